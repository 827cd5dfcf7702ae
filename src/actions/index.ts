// The action registry: every Action this server answers.
import type { Action } from "./action";
import describeInstanceBackups from "./describe-instance-backups";

const all: Action[] = [describeInstanceBackups as unknown as Action];

export const actions: ReadonlyMap<string, Action> = new Map(all.map((a) => [a.name, a]));
