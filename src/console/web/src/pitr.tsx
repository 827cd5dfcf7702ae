// The instance page's point-in-time view: the restorable range of its second-level backup with the gaps inside
// it (a timeline bar and a list), the last proof, and a form to clone the instance to a second (CloneInstances
// with CloneTime; shown only when this server has that action).
import { useState } from "preact/hooks";
import { useApp } from "./app";
import { Badge, ErrorNote } from "./components";
import { useLoad, useSubmit } from "./hooks";

interface Range {
  BackupMode: string;
  RestorableFrom: number;
  RestorableUntil: number;
  RestorableFromTime: string;
  RestorableUntilTime: string;
  MissingTimestamps: Array<{ StartTimeStamp: number; EndTimeStamp: number }>;
  MissingTimes: Array<{ Start: string; End: string }>;
  Bases: Array<{ BackupId: string; Time: string; Proof: string; ProofDetail: string }>;
  CloneAvailable: boolean;
  AtBackupId?: string;
  AtReason?: string;
}

export function PitrSection({ instanceId }: { instanceId: string }) {
  const { t, call } = useApp();
  const range = useLoad(() => call<Range>("DescribeSecondLevelBackupRange", { InstanceId: instanceId }), [instanceId]);
  const r = range.data;
  if (range.error) return <div class="card" data-testid="pitr"><h2>{t("pitr.title")}</h2><ErrorNote error={range.error} /></div>;
  if (!r) return null;
  if (r.BackupMode !== "SecondLevelBackup") return <div class="card" data-testid="pitr"><h2>{t("pitr.title")}</h2><p class="sub">{t("pitr.off")}</p></div>;
  const span = Math.max(1, r.RestorableUntil - r.RestorableFrom);
  const proved = r.Bases.filter((b) => b.Proof);
  const proof = proved[proved.length - 1];
  const proofKey = proof ? (`pitr.proof.${proof.Proof}` as "pitr.proof.complete") : "pitr.proof.none";
  return (
    <div class="card" data-testid="pitr">
      <h2>{t("pitr.title")}</h2>
      {r.RestorableFrom ? (
        <>
          <p data-testid="pitr-range">{t("pitr.range", { from: r.RestorableFromTime, until: r.RestorableUntilTime })}</p>
          <div class="pitr-bar" role="img" aria-label={t("pitr.gaps")}>
            {r.MissingTimestamps.filter((g) => g.EndTimeStamp >= r.RestorableFrom).map((g) => {
              const left = ((Math.max(g.StartTimeStamp, r.RestorableFrom) - r.RestorableFrom) / span) * 100;
              const width = Math.max(0.5, ((Math.min(g.EndTimeStamp, r.RestorableUntil) - Math.max(g.StartTimeStamp, r.RestorableFrom) + 1) / span) * 100);
              return <span class="pitr-gap" style={{ left: `${left}%`, width: `${width}%` }} />;
            })}
          </div>
        </>
      ) : <p class="sub" data-testid="pitr-range">{t("pitr.noRange")}</p>}
      <h3>{t("pitr.gaps")}</h3>
      {r.MissingTimes.length ? (
        <ul data-testid="pitr-gaps">{r.MissingTimes.map((g) => <li class="mono">{g.Start} – {g.End}</li>)}</ul>
      ) : <p class="sub" data-testid="pitr-gaps">{t("pitr.noGaps")}</p>}
      <p data-testid="pitr-proof">
        {t("pitr.lastProof", { result: t(proofKey) })}{" "}
        {proof ? <Badge kind={proof.Proof === "complete" ? "ok" : proof.Proof === "failed" ? "bad" : "muted"} title={proof.ProofDetail}>{proof.Time}</Badge> : null}
      </p>
      {r.CloneAvailable ? <CloneForm instanceId={instanceId} defaultAt={r.RestorableUntilTime} /> : <p class="sub" data-testid="pitr-clone-unavailable">{t("pitr.clone.unavailable")}</p>}
    </div>
  );
}

function CloneForm({ instanceId, defaultAt }: { instanceId: string; defaultAt: string }) {
  const { t, call } = useApp();
  const [at, setAt] = useState(defaultAt);
  const [noAuth, setNoAuth] = useState(true);
  const [password, setPassword] = useState("");
  const [created, setCreated] = useState<string[] | null>(null);
  const { busy, error, submit } = useSubmit(async () => {
    setCreated(null);
    // The base a clone to that second starts from (the same plan CloneInstances itself makes).
    const r = await call<Range>("DescribeSecondLevelBackupRange", { InstanceId: instanceId, At: at });
    if (!r.AtBackupId) throw new Error(r.AtReason ?? "that second is not restorable");
    const out = await call<{ InstanceIds: string[] }>("CloneInstances", {
      InstanceId: instanceId, GoodsNum: 1, ZoneId: 0, BillingMode: 0, Period: 1, SecurityGroupIdList: [], BackupId: r.AtBackupId, CloneTime: at,
      ...(noAuth ? { NoAuth: true } : { Password: password }),
    });
    setCreated(out.InstanceIds);
  });
  return (
    <form class="backup-now" onSubmit={submit} data-testid="pitr-clone">
      <h3>{t("pitr.clone.title")}</h3>
      <label>
        <span>{t("pitr.clone.at")}</span>
        <input name="at" class="mono" value={at} onInput={(e) => setAt((e.target as HTMLInputElement).value)} />
      </label>
      <label class="inline">
        <input type="checkbox" name="noauth" checked={noAuth} onChange={(e) => setNoAuth((e.target as HTMLInputElement).checked)} /> {t("pitr.clone.noAuth")}
      </label>
      {noAuth ? null : (
        <label>
          <span>{t("pitr.clone.password")}</span>
          <input name="password" type="password" autocomplete="new-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </label>
      )}
      <button type="submit" class="primary" disabled={busy} data-testid="pitr-clone-submit">{t("pitr.clone.submit")}</button>
      <ErrorNote error={error} />
      {created ? <p data-testid="pitr-clone-created">{t("pitr.clone.started", { ids: created.join(", ") })}</p> : null}
    </form>
  );
}
