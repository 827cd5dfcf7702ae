// Provisioning of the instances CloneInstances creates, behind one small interface: where an instance's Redis
// server runs and how it is started, checked and stopped. Today one provider: local redis-server processes of
// the node that owns the instance (local.ts). Containers or Kubernetes would implement the same five methods.

/** What a provider is told about one instance (from its provisioned_instances row and its registration). */
export interface InstanceSpec {
  instanceId: string;
  /** The address it listens on (the node's --advertise-host) and its port (from --clone-ports). */
  host: string;
  port: number;
  /** Its own owner-only directory (DATA/instances/<id>): configuration, data files, log. */
  dataDir: string;
  /** requirepass; absent with NoAuth. */
  password?: string;
  /** One node of a cluster-shaped instance: started with cluster-enabled (its nodes.conf in `dataDir`). */
  cluster?: boolean;
}

export interface InstanceProvider {
  /** `local`, as stored in provisioned_instances.provider. */
  readonly name: string;
  /** Creates the instance's directory (owner-only) and says where the data file it first loads goes. */
  prepare(spec: InstanceSpec): Promise<{ dataFile: string }>;
  /**
   * Starts the server on what its directory holds (the initial data file, later its append-only file). Resolves
   * once the process runs; it may still be loading (its address answers -LOADING until it is done).
   */
  start(spec: InstanceSpec): Promise<void>;
  /** Whether the instance's server process is alive. */
  alive(spec: InstanceSpec): Promise<boolean>;
  /** Stops the server (gracefully, then by force after `graceMs`; 0: at once). Nothing running is fine. */
  stop(spec: InstanceSpec, graceMs: number): Promise<void>;
  /** Stops it at once and deletes its directory: nothing of it is left. Idempotent. */
  destroy(spec: InstanceSpec): Promise<void>;
  /** The last lines of the server's own log, for messages about why it stopped or never came up. */
  logTail(spec: InstanceSpec): Promise<string>;
}
