// Task type codes (DescribeTaskList's TaskTypes) and names (DescribeTaskInfo's TaskType), and the mapping of
// task states to DescribeTaskList's Result codes.
import type { TaskStatus } from "../catalog/types";

export const TASK = {
  exportBackup: "009",
  restore: "010",
  backup: "012",
  deleteBackup: "014",
  autoBackup: "017",
  removeBackupFile: "046",
  /** CloneInstances: a new instance from a backup, or from a second of the stream. */
  clone: "026",
  /** ModifyInstanceBackupMode: no code is documented; this one is ours. */
  modifyBackupMode: "090",
} as const;

export const TASK_NAMES: Record<string, string> = {
  "009": "FLOW_EXPORTBACKUP",
  "010": "FLOW_RESTOREBACKUP",
  "012": "FLOW_BACKUPINSTANCE",
  "014": "FLOW_DELBACKUP",
  "017": "FLOW_AUTOBACKUP",
  "026": "FLOW_CLONEBACKUP",
  "046": "FLOW_REMOVE_BACKUP_FILE",
  "090": "FLOW_MODIFY_BACKUP_MODE",
};

/** DescribeTaskList Result: 0 init, 1 running, 2 done, 4 failed. */
export const RESULT_OF: Record<TaskStatus, number> = { preparing: 0, running: 1, succeed: 2, failed: 4 };
export const STATUS_OF_RESULT: Record<number, TaskStatus> = { 0: "preparing", 1: "running", 2: "succeed", 4: "failed" };
