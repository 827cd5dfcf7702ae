// DescribeBackupDetail: one backup of one instance. The encryption fields the API may leave out (DecryptKey,
// KmsKeyId, KeyAlgorithm) are left out when they do not apply, as the cloud does: an unencrypted backup answers
// Encrypted false and none of them. A backup encrypted here names its master key (KmsKeyId) and AES-256-GCM; an
// encrypted fixture record (no key here) names the cloud's algorithm and no key. DecryptKey (the backup's data
// key, base64) is given only when download links serve the encrypted file (--download-encrypted), the request came
// over TLS and the key's CAM policy allows DescribeBackupDecryptKey.
import { DECRYPT_KEY_ACTION, downloadForm } from "../downloads/encrypted";
import { backupKeyOf } from "../jobs/backups";
import { ALGORITHM } from "../storage/encryption";
import { defineBackupAction } from "./action";
import { policyAllows } from "./scope";

export default defineBackupAction({
  name: "DescribeBackupDetail",
  async handle({ instance, backup: b }, ctx) {
    const key = backupKeyOf(b);
    let decryptKey: string | undefined;
    if (key && downloadForm(ctx.services.config, b).encrypted && ctx.origin.startsWith("https://") && policyAllows(ctx.credential, DECRYPT_KEY_ACTION, instance.instanceId)) {
      // A key the server cannot open now leaves DecryptKey out rather than failing the whole answer.
      decryptKey = (await ctx.services.keys?.unwrap(key).catch(() => undefined))?.toString("base64");
    }
    return {
      BackupId: b.backupId,
      StartTime: ctx.time.format(b.startTime),
      EndTime: b.endTime !== undefined ? ctx.time.format(b.endTime) : "",
      BackupType: b.backupType,
      Status: b.status,
      Remark: b.remark,
      Locked: b.locked,
      BackupSize: b.backupSize,
      InstanceType: b.instanceType,
      MemSize: instance.memSizeMb,
      ShardNum: Math.max(1, b.files.length || instance.shardNum),
      ReplicasNum: 0,
      Encrypted: b.encrypted,
      ...(b.encrypted ? { KeyAlgorithm: key ? ALGORITHM : "AES-256-CBC" } : {}),
      ...(key ? { KmsKeyId: key.keyId } : {}),
      ...(decryptKey ? { DecryptKey: decryptKey } : {}),
    };
  },
});
