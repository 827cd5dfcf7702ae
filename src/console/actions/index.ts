// The console's action registry: every public action plus the console-only extensions, which the public API at
// `/` does not answer (the cloud has no such actions, and an SDK client must not come to rely on them).
import type { Action } from "../../actions/action";
import { actions as publicActions } from "../../actions";
import deleteInstanceBackup from "./delete-instance-backup";
import describeInstanceOverview from "./describe-instance-overview";
import modifyInstanceBackupSource from "./modify-instance-backup-source";
import describeBackupSources from "./describe-backup-sources";
import describeSecondLevelBackupRange from "./describe-second-level-backup-range";

export const consoleOnly = [deleteInstanceBackup, describeInstanceOverview, modifyInstanceBackupSource, describeBackupSources, describeSecondLevelBackupRange] as unknown as Action[];

export const consoleActions: ReadonlyMap<string, Action> = new Map([...publicActions, ...consoleOnly.map((a) => [a.name, a] as const)]);
