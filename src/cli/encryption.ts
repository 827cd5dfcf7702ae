// Encryption at rest from the command line: `key-rotation` (a new active master key, every live backup
// re-wrapped, keys retired once unused) and `decrypt` (an encrypted download, `.rdb.enc`, back to the plain RDB
// with the backup's DecryptKey or with the keyring and the catalogue).
import type { Command } from "commander";
import fs from "node:fs";
import { pipeline } from "node:stream/promises";
import { backupKeyOf } from "../jobs/backups";
import { retireKey, rotateKeys } from "../jobs/key-rotation";
import { ChunkDecryptor } from "../storage/encryption";
import { withServices, withSettings } from "./context";
import { formatOf } from "./output";
import { UsageError } from "./settings";
import type { Services } from "../services";
import type { KeyProvider } from "../storage/keys/provider";

function dataKeyOf(text: string, where: string): Buffer {
  const key = /^[A-Za-z0-9+/]+={0,2}$/.test(text.trim()) ? Buffer.from(text.trim(), "base64") : Buffer.alloc(0);
  if (key.length !== 32) throw new UsageError(`${where} must be a backup's DecryptKey: the base64 of 32 bytes`);
  return key;
}

async function decryptFile(file: string, out: string, dataKey: Buffer): Promise<number> {
  const partial = `${out}.partial`;
  let bytes = 0;
  const decryptor = new ChunkDecryptor(dataKey, { name: file });
  decryptor.on("data", (c: Buffer) => (bytes += c.length));
  try {
    // The plain file gets its name only once every chunk has authenticated, the last one included.
    await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 20 }), decryptor, fs.createWriteStream(partial, { mode: 0o600 }));
    fs.renameSync(partial, out);
  } catch (err) {
    fs.rmSync(partial, { force: true });
    throw err;
  }
  return bytes;
}

function keyringOf(s: Services): { file: string; keys: KeyProvider } {
  if (!s.config.encryptionKeys || !s.keys) throw new UsageError("this command needs the keyring: --encryption-keys FILE (CRS_ENCRYPTION_KEYS)");
  return { file: s.config.encryptionKeys, keys: s.keys };
}

export function registerEncryptionCommands(program: Command): void {
  withSettings(program.command("key-rotation").description("add a new active master key to the --encryption-keys keyring and re-wrap every live encrypted backup under it (the files are not touched)"), "all")
    .option("--new-key <id>", "id of the new key (default k<n+1>)")
    .option("--no-new-key", "add no key: re-wrap under the key the keyring already names active (several nodes: distribute the keyring first)")
    .option("--output <format>", "table or json", "table")
    .action(async (o: { newKey?: string | boolean; output: string }, cmd: Command) => withServices(cmd, async (s) => {
      const report = await rotateKeys({
        catalog: s.catalog, keys: keyringOf(s).keys, file: keyringOf(s).file,
        newKeyId: o.newKey === false ? false : typeof o.newKey === "string" ? o.newKey : undefined,
      });
      if (formatOf(o.output) === "json") console.log(JSON.stringify(report, null, 2));
      else {
        console.log(`${report.added ? `added key ${report.added}; ` : ""}active key ${report.active}: ${report.rewrapped} backup(s) re-wrapped, ${report.alreadyActive} already under it`);
        for (const f of report.failed) console.log(`  not re-wrapped: ${f.backupId} (key ${f.keyId}): ${f.reason}`);
      }
      if (report.failed.length) process.exitCode = 1;
    }));

  withSettings(program.command("key-retire <keyId>").description("remove a master key from the --encryption-keys keyring; refused while it is active or still wraps a live backup"), "all")
    .action(async (id: string, _o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      await retireKey({ catalog: s.catalog, file: keyringOf(s).file }, id);
      console.log(`retired ${id}: it is no longer in ${keyringOf(s).file}`);
    }));

  withSettings(program.command("decrypt <file>").description("decrypt an encrypted backup file (a .rdb.enc download) into the plain RDB"), "all")
    .option("--key <base64>", "the backup's DecryptKey (DescribeBackupDetail); also CRS_DECRYPT_KEY")
    .option("--backup <id>", "instead of --key: the backup's data key from the catalogue, opened with the keyring")
    .option("--out <file>", "where the plain RDB goes (default: the file name without .enc)")
    .action(async (file: string, o: { key?: string; backup?: string; out?: string }, cmd: Command) => {
      const out = o.out ?? (file.endsWith(".enc") ? file.slice(0, -4) : `${file}.rdb`);
      if (out === file) throw new UsageError("--out must differ from the encrypted file");
      const given = o.key ?? process.env.CRS_DECRYPT_KEY;
      let dataKey: Buffer;
      if (given !== undefined && o.backup === undefined) dataKey = dataKeyOf(given, o.key !== undefined ? "--key" : "CRS_DECRYPT_KEY");
      else if (o.backup !== undefined && given === undefined) {
        dataKey = await withServices(cmd, async (s) => {
          const b = await s.catalog.backup(o.backup!);
          if (!b) throw new Error(`no backup ${o.backup}`);
          const w = backupKeyOf(b);
          if (!w) throw new Error(`backup ${b.backupId} is not encrypted`);
          return s.store.dataKey(w, `backup ${b.backupId}`);
        });
      } else throw new UsageError("give one of --key (or CRS_DECRYPT_KEY) and --backup");
      const bytes = await decryptFile(file, out, dataKey);
      console.log(`${out} (${bytes} bytes)`);
    });
}
