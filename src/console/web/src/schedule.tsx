// The automatic-backup settings of an instance: DescribeAutoBackupConfig, edited and saved with
// ModifyAutoBackupConfig (days of the week, a whole-hour window, retention days).
import { useEffect, useState } from "preact/hooks";
import { useApp } from "./app";
import { ErrorNote } from "./components";
import { useLoad, useSubmit } from "./hooks";

export const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"] as const;
const HOURS = Array.from({ length: 24 }, (_, h) => `${String(h).padStart(2, "0")}:00`);

interface Config {
  WeekDays: string[];
  TimePeriod: string;
  BackupStorageDays: number;
}

export function ScheduleForm({ instanceId, onSaved }: { instanceId: string; onSaved: () => void }) {
  const { t, call, session } = useApp();
  const cfg = useLoad(() => call<Config>("DescribeAutoBackupConfig", { InstanceId: instanceId }), [instanceId]);
  const [days, setDays] = useState<string[]>([]);
  const [from, setFrom] = useState("00:00");
  const [to, setTo] = useState("01:00");
  const [keep, setKeep] = useState(7);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (!cfg.data) return;
    setDays(cfg.data.WeekDays);
    const [a, b] = cfg.data.TimePeriod.split("-");
    setFrom(a ?? "00:00");
    setTo(b ?? "01:00");
    setKeep(cfg.data.BackupStorageDays);
  }, [cfg.data]);

  const { busy: saving, error, submit: save } = useSubmit(async () => {
    setSaved(false);
    await call("ModifyAutoBackupConfig", { InstanceId: instanceId, WeekDays: days, TimePeriod: `${from}-${to}`, AutoBackupType: 1, BackupStorageDays: keep });
    setSaved(true);
    cfg.reload();
    onSaved();
  });

  if (cfg.error) return <ErrorNote error={cfg.error} />;
  if (!cfg.data) return <p class="muted">{t("common.loading")}</p>;
  return (
    <form class="schedule" onSubmit={save} data-testid="schedule">
      <fieldset>
        <legend>{t("schedule.days")}</legend>
        <div class="weekdays">
          {WEEKDAYS.map((d) => (
            <label class="check">
              <input type="checkbox" name={`day-${d}`} checked={days.includes(d)}
                onChange={(e) => setDays((cur) => ((e.target as HTMLInputElement).checked ? [...cur, d] : cur.filter((x) => x !== d)))} />
              <span>{t(`weekday.${d}`)}</span>
            </label>
          ))}
        </div>
      </fieldset>
      <div class="row">
        <HourSelect label={t("schedule.from")} name="from" value={from} onChange={setFrom} />
        <HourSelect label={t("schedule.to")} name="to" value={to} onChange={setTo} />
        <label>
          <span>{t("schedule.retention")}</span>
          <input type="number" name="keep" min={1} max={1825} value={keep} onInput={(e) => setKeep(Number((e.target as HTMLInputElement).value))} />
        </label>
      </div>
      <p class="sub">{t("schedule.zone", { zone: session.TimeZone })}</p>
      <ErrorNote error={error} />
      <div class="row">
        <button type="submit" class="primary" disabled={saving}>{t("common.save")}</button>
        {saved ? <span class="saved" role="status">{t("common.saved")}</span> : null}
      </div>
    </form>
  );
}

/** One end of the backup window: a whole hour of the day. */
function HourSelect({ label, name, value, onChange }: { label: string; name: string; value: string; onChange: (hour: string) => void }) {
  return (
    <label>
      <span>{label}</span>
      <select name={name} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {HOURS.map((h) => <option value={h}>{h}</option>)}
      </select>
    </label>
  );
}
