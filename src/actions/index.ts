// The action registry: every Action this server answers.
import type { Action } from "./action";
import describeBackupDetail from "./describe-backup-detail";
import describeInstanceBackups from "./describe-instance-backups";
import describeInstances from "./describe-instances";
import describeTaskInfo from "./describe-task-info";
import describeTaskList from "./describe-task-list";
import manualBackupInstance from "./manual-backup-instance";

const all = [describeInstanceBackups, describeInstances, describeBackupDetail, describeTaskInfo, describeTaskList, manualBackupInstance] as unknown as Action[];

export const actions: ReadonlyMap<string, Action> = new Map(all.map((a) => [a.name, a]));
