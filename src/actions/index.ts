// The action registry: every Action this server answers.
import type { Action } from "./action";
import describeBackupDetail from "./describe-backup-detail";
import describeInstanceBackups from "./describe-instance-backups";
import describeInstances from "./describe-instances";
import describeTaskInfo from "./describe-task-info";
import describeTaskList from "./describe-task-list";
import manualBackupInstance from "./manual-backup-instance";
import describeBackupUrl from "./describe-backup-url";
import describeBackupDownloadRestriction from "./describe-backup-download-restriction";
import modifyBackupDownloadRestriction from "./modify-backup-download-restriction";
import describeAutoBackupConfig from "./describe-auto-backup-config";
import modifyAutoBackupConfig from "./modify-auto-backup-config";
import restoreInstance from "./restore-instance";
import modifyInstanceBackupMode from "./modify-instance-backup-mode";
import describeSecondLevelBackupInfo from "./describe-second-level-backup-info";
import cloneInstances from "./clone-instances";

const all = [describeInstanceBackups, describeInstances, describeBackupDetail, describeTaskInfo, describeTaskList, manualBackupInstance,
  describeAutoBackupConfig, modifyAutoBackupConfig, restoreInstance] as unknown as Action[];
all.push(...([describeBackupUrl, describeBackupDownloadRestriction, modifyBackupDownloadRestriction] as unknown as Action[]));
all.push(...([modifyInstanceBackupMode, describeSecondLevelBackupInfo, cloneInstances] as unknown as Action[]));

export const actions: ReadonlyMap<string, Action> = new Map(all.map((a) => [a.name, a]));
