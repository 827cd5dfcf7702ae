// An instance's backup source (master / replica / prefer-replica), shown and changed with the console-only
// ModifyInstanceBackupSource; and, for one backup, the node and replication offset each shard was taken from
// (DescribeBackupSources).
import { useEffect, useState } from "preact/hooks";
import { useApp } from "./app";
import { ErrorNote } from "./components";
import type { Key } from "./i18n";
import { useLoad, useSubmit } from "./hooks";
import { BACKUP_SOURCE_MODES, BackupSourceMode, BackupSources } from "./types";

export function sourceLabel(t: ReturnType<typeof useApp>["t"], mode: BackupSourceMode): string {
  return t(`source.mode.${mode}` as Key);
}

export function BackupSourceForm({ instanceId, current, registered, onSaved }: { instanceId: string; current: BackupSourceMode; registered: boolean; onSaved: () => void }) {
  const { t, call } = useApp();
  const [mode, setMode] = useState<BackupSourceMode>(current);
  const [saved, setSaved] = useState(false);
  useEffect(() => setMode(current), [current]);
  const { busy: saving, error, submit: save } = useSubmit(async () => {
    setSaved(false);
    await call("ModifyInstanceBackupSource", { InstanceId: instanceId, BackupSource: mode });
    setSaved(true);
    onSaved();
  });
  return (
    <form class="backup-source" onSubmit={save} data-testid="backup-source" data-current={current}>
      <p class="sub">{t("source.intro")}</p>
      <fieldset disabled={!registered || saving}>
        <legend>{t("source.title")}</legend>
        {BACKUP_SOURCE_MODES.map((m) => (
          <label class="check">
            <input type="radio" name="backup-source" value={m} checked={mode === m} onChange={() => { setMode(m); setSaved(false); }} />
            <span>{sourceLabel(t, m)}</span>
          </label>
        ))}
      </fieldset>
      <p class="sub" data-testid="backup-source-hint">{registered ? t(`source.hint.${mode}` as Key) : t("source.unregistered")}</p>
      <ErrorNote error={error} />
      <div class="row">
        <button type="submit" class="primary" disabled={!registered || saving || mode === current}>{t("common.save")}</button>
        {saved ? <span class="saved" role="status">{t("common.saved")}</span> : null}
      </div>
    </form>
  );
}

/** Where each shard of a backup was taken from (shown in the backup's details). */
export function BackupOrigin({ instanceId, backupId }: { instanceId: string; backupId: string }) {
  const { t, call } = useApp();
  const origin = useLoad(() => call<BackupSources>("DescribeBackupSources", { InstanceId: instanceId, BackupId: backupId }), [instanceId, backupId]);
  return (
    <div class="origin" data-testid="backup-origin" data-ready={origin.data ? "1" : "0"}>
      <dt>{t("source.takenFrom")}</dt>
      <dd class="mono">
        <ErrorNote error={origin.error} />
        {origin.data ? (
          origin.data.Sources.length ? (
            <ul class="plain">
              {origin.data.Sources.map((s) => (
                <li data-role={s.Role} data-node={s.Node}>
                  {t("source.shard", { shard: s.Shard, role: sourceLabel(t, s.Role), node: s.Node })}
                  {s.Offset !== null ? t("source.offset", { offset: s.Offset }) : ""}
                </li>
              ))}
            </ul>
          ) : t("source.unknown")
        ) : origin.loading ? t("common.loading") : null}
      </dd>
    </div>
  );
}
