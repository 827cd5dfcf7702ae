// The Redis layer's errors carry a code a caller branches on (the task's failure reason, a metric label) beside
// a message written for an operator; each kind names itself (CaptureError, TopologyError, SentinelError).

export class CodedError<Code extends string> extends Error {
  constructor(readonly code: Code, message: string) {
    super(message);
  }
}
