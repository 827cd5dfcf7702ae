// Catalogue administration from the command line: fixtures, instances, keys, tasks, migrations, storage checks.
import type { Command } from "commander";
import path from "node:path";
import { DEFAULT_ACCOUNT, loadSeedFile } from "../server/seed";
import { maskRedisUrl, registerInstance } from "../jobs/instances";
import { BACKUP_SOURCES, BackupSource } from "../records";
import { migrateData } from "../jobs/migrate-data";
import { reconcileStorage } from "../jobs/reconcile";
import { TASK_NAMES } from "../jobs/tasks";
import { dataDirHolder } from "../server/data-dir-lock";
import { newKeyPair } from "../server/credentials";
import { withServices, withSettings } from "./context";
import { formatBytes, printRows, progressBar, formatOf } from "./output";
import { UsageError } from "./settings";

function outputOption(cmd: Command): Command {
  return cmd.option("--output <format>", "table or json", "table");
}

function withPassword(url: string, password: string | undefined): string {
  if (!password) return url;
  const sentinel = /^(rediss?-sentinel:\/\/)(?:([^:@/]*)(?::[^@/]*)?@)?(.*)$/.exec(url);
  // a Sentinel URL (several hosts) is no WHATWG URL: the data nodes' password goes before the '@' all the same
  if (sentinel) return `${sentinel[1]}${sentinel[2] ?? ""}:${encodeURIComponent(password)}@${sentinel[3]}`;
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString().replace(/\/$/, "");
}

/** Explains the errors a first registration meets most, with what to do. */
function explainProbe(err: Error, url: string): Error {
  if (/NOAUTH|Authentication required/i.test(err.message)) {
    return new Error(`${maskRedisUrl(url)} requires a password (${err.message.trim()}): give it in CRS_REDIS_PASSWORD, or in the URL as redis://:PASSWORD@host:port (redis://USER:PASSWORD@host:port for an ACL user)`);
  }
  if (/WRONGPASS|invalid password|invalid username-password/i.test(err.message)) {
    return new Error(`${maskRedisUrl(url)} refused the password (${err.message.trim()}): check CRS_REDIS_PASSWORD or the URL's user and password`);
  }
  return err;
}

function onOff(v: string, where: string): boolean {
  if (v === "on" || v === "off") return v === "on";
  throw new UsageError(`${where} must be on or off, got ${JSON.stringify(v)}`);
}

export function registerAdminCommands(program: Command): void {
  withSettings(program.command("seed <file>").description("load a fixture file into the catalogue, all or nothing"), "all")
    .action(async (file: string, _o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      const data = await loadSeedFile(s.catalog, file, s.time, (r) => s.regions.has(r));
      console.log(`loaded ${data.credentials.length} credential(s), ${data.instances.length} instance(s), ${data.backups.length} backup(s)`);
    }));

  const instance = program.command("instance").description("register, list and remove the Redis servers backed up");
  withSettings(instance.command("add").description("register a running Redis (standalone, or a cluster through any node)"), "all")
    .requiredOption("--redis <url>", "redis://[user:password@]host:port, rediss:// for TLS, or redis-sentinel://[user:password@]h1:26379[,h2:26379]/masterName[?sentinelPassword=P]")
    .option("--id <id>", "instance id (crs- and 8 lower-case letters or digits; default random)")
    .option("--name <name>", "instance name")
    .option("--region <region>", "region", "ap-guangzhou")
    .option("--account <account>", "owning account", DEFAULT_ACCOUNT)
    .option("--no-check", "register without connecting (the version is learnt at the first backup)")
    .option("--backup-source <source>", "the node backups snapshot: master, replica (never fork the master) or prefer-replica", "master")
    .option("--encrypt <on|off>", "encrypt this instance's backups at rest, or never (default: as the server's --encrypt-backups)")
    .action(async (o: { redis: string; id?: string; name?: string; region: string; account: string; check: boolean; backupSource: string; encrypt?: string }, cmd: Command) => withServices(cmd, async (s) => {
      const encryptBackups = o.encrypt === undefined ? undefined : onOff(o.encrypt, "--encrypt");
      if (encryptBackups && !s.keys) throw new UsageError("--encrypt on needs the keyring: --encryption-keys FILE (CRS_ENCRYPTION_KEYS)");
      if (!s.regions.has(o.region)) throw new UsageError(`--region ${o.region} is not a region of this server`);
      if (!BACKUP_SOURCES.includes(o.backupSource as BackupSource)) throw new UsageError(`--backup-source must be one of ${BACKUP_SOURCES.join(", ")}, got ${o.backupSource}`);
      const url = withPassword(o.redis, process.env.CRS_REDIS_PASSWORD);
      const added = await registerInstance(s.catalog, {
        instanceId: o.id, name: o.name, region: o.region, accountId: o.account, redisUrl: url, noCheck: !o.check, now: Date.now(), allowedHosts: s.config.clusterHosts, backupSource: o.backupSource as BackupSource, encryptBackups,
      }).catch((err: Error) => { throw explainProbe(err, url); });
      console.log(`registered ${added.instanceId} (${added.name}, ${added.region}, account ${added.accountId}) -> ${maskRedisUrl(added.redisUrl!)}` +
        (added.redisVersion ? `, Redis ${added.redisVersion}, ${added.shardNum} shard(s)` : ""));
    }));
  outputOption(withSettings(instance.command("list").description("registered instances (passwords shown as ***)"), "all"))
    .action(async (o: { output: string }, cmd: Command) => withServices(cmd, async (s) => {
      const rows = (await s.catalog.instances()).filter((i) => i.deletedAt === undefined).map((i) => ({
        instance: i.instanceId, name: i.name, region: i.region, account: i.accountId, type: i.instanceType, shards: i.shardNum, source: i.backupSource ?? "master", redis: i.redisUrl ? maskRedisUrl(i.redisUrl) : "-",
      }));
      printRows(rows, formatOf(o.output), ["instance", "name", "region", "account", "type", "shards", "source", "redis"]);
    }));
  withSettings(instance.command("encryption <id> <mode>").description("whether an instance's new backups are encrypted at rest: on, off, or default (as the server's --encrypt-backups)"), "all")
    .action(async (id: string, mode: string, _o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      const found = await s.catalog.instance(id);
      if (!found || found.deletedAt !== undefined) throw new Error(`no instance ${id}`);
      if (mode !== "default" && mode !== "on" && mode !== "off") throw new UsageError(`the mode must be on, off or default, got ${JSON.stringify(mode)}`);
      if (mode === "on" && !s.keys) throw new UsageError("on needs the keyring: --encryption-keys FILE (CRS_ENCRYPTION_KEYS)");
      await s.catalog.updateInstance(id, { encryptBackups: mode === "default" ? null : mode === "on" });
      console.log(`${id}: new backups ${mode === "default" ? `follow the server (--encrypt-backups, now ${s.config.encryptBackups ? "on" : "off"})` : mode === "on" ? "are encrypted" : "are not encrypted"}`);
    }));
  withSettings(instance.command("remove <id>").description("remove an instance; its backups are deleted (kept as Status -2 records)"), "all")
    .action(async (id: string, _o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      const found = await s.catalog.instance(id);
      if (!found || found.deletedAt !== undefined) throw new Error(`no instance ${id}`);
      let removed = 0;
      // A clone this service provisioned: its process stopped and its directory deleted too (src/instances/).
      if (await s.catalog.provisioned(found.instanceId)) {
        await s.provisioning.remove(found, async () => void (removed = await s.backups.removeInstance(found)));
      } else removed = await s.backups.removeInstance(found);
      console.log(`removed ${found.instanceId}; ${removed} backup(s) deleted (kept as Status -2 records)`);
    }));

  const key = program.command("key").description("API keys (SecretId / SecretKey) of the accounts");
  outputOption(withSettings(key.command("list").description("keys, without their secrets").option("--account <account>", "only this account's"), "all"))
    .action(async (o: { output: string; account?: string }, cmd: Command) => withServices(cmd, async (s) => {
      const rows = (await s.catalog.credentials(o.account)).map((c) => ({
        secretId: c.secretId, account: c.accountId, temporary: c.token ? "yes" : "no", policy: c.policy ? JSON.stringify(c.policy) : "-",
      }));
      printRows(rows, formatOf(o.output), ["secretId", "account", "temporary", "policy"]);
    }));
  outputOption(withSettings(key.command("add").description("generate a key for an account (its secret is printed once)").option("--account <account>", "account", DEFAULT_ACCOUNT), "all"))
    .action(async (o: { output: string; account: string }, cmd: Command) => withServices(cmd, async (s) => {
      const made = { ...newKeyPair(), account: o.account };
      await s.catalog.putCredential({ secretId: made.secretId, secretKey: made.secretKey, accountId: o.account });
      printRows([made], formatOf(o.output), ["secretId", "secretKey", "account"]);
    }));
  withSettings(key.command("revoke <secretId>").description("delete a key: requests signed with it fail at once"), "all")
    .action(async (secretId: string, _o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      if (!(await s.catalog.deleteCredential(secretId))) throw new Error(`no key ${secretId}`);
      console.log(`revoked ${secretId}`);
    }));
  outputOption(withSettings(key.command("rotate <secretId>").description("replace a key by a new one of the same account and policy (the old one is revoked)"), "all"))
    .action(async (secretId: string, o: { output: string }, cmd: Command) => withServices(cmd, async (s) => {
      const old = await s.catalog.credential(secretId);
      if (!old) throw new Error(`no key ${secretId}`);
      const made = { ...old, ...newKeyPair() };
      await s.catalog.transaction(async (tx) => {
        await tx.putCredential(made);
        await tx.deleteCredential(secretId);
      });
      printRows([{ secretId: made.secretId, secretKey: made.secretKey, account: made.accountId, replaces: secretId }], formatOf(o.output), ["secretId", "secretKey", "account", "replaces"]);
    }));

  const task = program.command("task").description("tasks (backups, restores, exports, deletions)");
  outputOption(withSettings(task.command("list").description("tasks, newest first")
    .option("--instance <id>", "only this instance's").option("--account <account>", "account", DEFAULT_ACCOUNT).option("--limit <n>", "at most this many", "20"), "all"))
    .action(async (o: { output: string; instance?: string; account: string; limit: string }, cmd: Command) => withServices(cmd, async (s) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit must be 1..1000, got ${o.limit}`);
      const { rows } = await s.catalog.listTasks({ accountId: o.account, instanceId: o.instance, limit, offset: 0 });
      printRows(rows.map((t) => ({
        taskId: t.taskId, type: TASK_NAMES[t.taskType] ?? t.taskType, instance: t.instanceId, status: t.status, progress: t.progress,
        start: s.time.format(t.startTime), end: t.endTime !== undefined ? s.time.format(t.endTime) : "", backupId: t.backupId ?? "", message: t.message,
      })), formatOf(o.output), ["taskId", "type", "instance", "status", "progress", "start", "end", "backupId", "message"]);
    }));

  withSettings(program.command("migrate").description("apply pending catalogue migrations (serve also does at start)"), "all")
    .action(async (_o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      const applied = await s.catalog.migrate();
      const pending = await s.catalog.pendingMigrations();
      console.log(`${s.catalog.describe()}: ${applied.length ? `applied ${applied.join(", ")}` : "up to date"}${pending.length ? `; still pending ${pending.join(", ")}` : ""}`);
    }));

  withSettings(program.command("migrate-data").description("copy an embedded installation (a data directory) into the configured catalogue and storage; resumable, the source is only read")
    .requiredOption("--from <dir>", "the data directory to copy from"), "all")
    .action(async (o: { from: string }, cmd: Command) => withServices(cmd, async (s) => {
      if (path.resolve(o.from) === path.resolve(s.config.dataDir) && s.config.catalog === undefined) {
        throw new UsageError("--from is the data directory this command would copy into: give --catalog and/or --storage for the target");
      }
      const holder = dataDirHolder(o.from);
      if (holder) throw new Error(`a crs-backup server (pid ${holder}) is using ${o.from}: stop it first, so that the copy is consistent`);
      const bar = progressBar();
      const r = await migrateData({ fromDir: o.from, catalog: s.catalog, store: s.store, onProgress: (done, total, label) => bar.updateCount(done, total, label) });
      bar.stop();
      console.log(`into ${s.catalog.describe()} and ${s.store.describe()}: ${r.credentials} key(s), ${r.instances} instance(s), ` +
        `${r.backups.copied} backup(s) copied (${r.backups.alreadyThere} already there, ${r.backups.skipped} in progress left out), ` +
        `${r.files.copied} file(s) copied (${formatBytes(r.files.bytes)}; ${r.files.alreadyThere} already there), every file verified; ${r.tasks} task record(s), ${r.settings} setting(s)`);
    }));

  const storage = program.command("storage").description("backup files in storage");
  outputOption(withSettings(storage.command("check").description("every catalogued file present with its size; files no backup accounts for removed")
    .option("--dry-run", "report orphan files without removing them"), "all"))
    .action(async (o: { output: string; dryRun?: boolean }, cmd: Command) => withServices(cmd, async (s) => {
      const r = await reconcileStorage({ catalog: s.catalog, store: s.store, dryRun: o.dryRun, checkFiles: true });
      // The store's optional operations (S3 multipart housekeeping): informational, never a failure.
      const capabilities = (await s.store.checkCapabilities?.()) ?? [];
      if (formatOf(o.output) === "json") process.stdout.write(`${JSON.stringify(capabilities.length ? { ...r, capabilities } : r, null, 2)}\n`);
      else {
        console.log(`${r.blobs} file(s) checked; ${r.orphans.length} orphan(s)${o.dryRun ? " (not removed: --dry-run)" : `, ${r.removed} removed`}; ${r.missing.length} missing; ${r.sizeMismatch.length} with the wrong size; ${r.inProgress} backup(s) in progress left alone`);
        for (const k of r.orphans) console.log(`orphan   ${k}`);
        for (const k of r.missing) console.log(`missing  ${k}`);
        for (const k of r.sizeMismatch) console.log(`size     ${k}`);
        for (const c of capabilities) {
          const state = c.supported === undefined ? "unknown (the store did not say)" : c.supported ? "implemented" : `not implemented by the store: ${c.without}`;
          console.log(`capability ${c.operation}: ${state}`);
        }
      }
      if (r.missing.length || r.sizeMismatch.length) process.exitCode = 1;
    }));
}
