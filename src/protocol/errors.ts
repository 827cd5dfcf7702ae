// One catalogue of coded errors. Each code has a zh-CN and an en-US message template; `{name}` placeholders are
// filled from the error's params. Handlers throw ApiError; the gateway renders it in the caller's language.

export type Language = "zh-CN" | "en-US";

interface Messages {
  zh: string;
  en: string;
}

const catalogue = {
  // Common codes (every action).
  UnsupportedProtocol: { zh: "不支持的请求方法 `{method}`，请使用 GET 或 POST。", en: "The HTTP method `{method}` is not supported; use GET or POST." },
  "AuthFailure.InvalidAuthorization": { zh: "请求头部的 Authorization 不符合腾讯云标准：{reason}。", en: "The Authorization header is invalid: {reason}." },
  "AuthFailure.SecretIdNotFound": { zh: "密钥不存在，请确认 SecretId 是否正确。", en: "The SecretId is not found, please ensure that your SecretId is correct." },
  "AuthFailure.SignatureFailure": { zh: "请求签名验证失败，请检查您的签名计算是否正确。{reason}", en: "The provided credentials could not be validated. Please check your signature is correct. {reason}" },
  "AuthFailure.SignatureExpire": { zh: "签名过期。Timestamp 和服务器时间相差不得超过五分钟，请检查本地时间是否和标准时间同步。", en: "The signature is expired, please request again." },
  "AuthFailure.TokenFailure": { zh: "临时证书 Token 无效。", en: "The session token is invalid for this SecretId." },
  "AuthFailure.InvalidSecretId": { zh: "密钥非法（不是云 API 密钥类型）。", en: "Invalid key (not a cloud API key type)." },
  InvalidAction: { zh: "接口 `{action}` 不存在。", en: "The request `Action` is invalid or not found: `{action}`." },
  NoSuchVersion: { zh: "接口版本 `{version}` 不存在，本服务仅支持 `2018-04-12`。", en: "The API version `{version}` does not exist; this service supports `2018-04-12` only." },
  MissingParameter: { zh: "缺少参数错误：缺少必选参数 `{name}`。", en: "The request is missing a required parameter `{name}`." },
  UnknownParameter: { zh: "未知参数错误：参数 `{name}` 不是接口 `{action}` 定义的参数。", en: "The parameter `{name}` is not recognized by action `{action}`." },
  InvalidParameter: { zh: "参数错误：{reason}", en: "Invalid parameter: {reason}" },
  InvalidParameterValue: { zh: "参数取值错误：{reason}", en: "Invalid parameter value: {reason}" },
  UnsupportedRegion: { zh: "接口不支持所传地域：{reason}", en: "The region is not supported: {reason}" },
  RequestSizeLimitExceeded: { zh: "请求包超过限制大小：{reason}", en: "The request size exceeds the limit: {reason}" },
  RequestLimitExceeded: { zh: "请求的次数超过了频率限制：接口 `{action}` 每秒最多 {limit} 次。", en: "Your current request count exceeds the frequency limit: at most {limit} requests per second for `{action}`." },
  "RequestLimitExceeded.IPLimitExceeded": { zh: "IP 限频：{reason}", en: "The request count of this IP address exceeds the limit: {reason}" },
  InternalError: { zh: "内部错误，请稍后重试（RequestId 可用于定位问题）。", en: "An internal error has occurred. Retry later (quote the RequestId)." },
  InvalidRequest: { zh: "请求无效：{reason}", en: "The request is invalid: {reason}" },
  ResourceInsufficient: { zh: "资源不足：服务的存储空间已满，请稍后重试。{reason}", en: "Insufficient resources: the service has no storage space left; try again later. {reason}" },
  // Action-specific codes.
  "InternalError.InternalError": { zh: "内部错误。", en: "Internal error." },
  "InvalidParameter.InvalidParameter": { zh: "业务参数错误：{reason}", en: "Invalid business parameter: {reason}" },
  "InvalidParameter.Period": { zh: "备份时间段 `TimePeriod` 无效：{reason}", en: "Invalid backup period `TimePeriod`: {reason}" },
  "InvalidParameterValue.WeekDaysIsInvalid": { zh: "备份周期 `WeekDays` 无效：{reason}", en: "Invalid backup days `WeekDays`: {reason}" },
  "InvalidParameterValue.BackupNotExists": { zh: "备份 `{backupId}` 不存在。", en: "The backup `{backupId}` does not exist." },
  "InvalidParameterValue.PasswordRuleError": { zh: "密码规则错误：{reason}", en: "The password does not meet the rules: {reason}" },
  "InvalidParameterValue.PasswordEmpty": { zh: "密码为空：{reason}", en: "The password is empty: {reason}" },
  "InvalidParameterValue.PasswordError": { zh: "实例密码错误。", en: "The instance password is incorrect." },
  "ResourceNotFound.InstanceNotExists": { zh: "根据 serialId 没有找到对应 redis：`{instanceId}`。", en: "No Redis instance `{instanceId}` was found." },
  "ResourceNotFound.TaskNotExists": { zh: "任务 `{taskId}` 不存在。", en: "The task `{taskId}` does not exist." },
  "ResourceUnavailable.InstanceLockedError": { zh: "实例 `{instanceId}` 正在执行其他流程（{reason}），请稍后再试。", en: "The instance `{instanceId}` is locked by another operation ({reason}); try again later." },
  "ResourceUnavailable.InstanceStatusAbnormal": { zh: "实例状态异常：{reason}", en: "The instance status is abnormal: {reason}" },
  "ResourceUnavailable.BackupStatusInvalid": { zh: "备份状态无效，无法下载：{reason}", en: "The backup cannot be downloaded in its current status: {reason}" },
  "ResourceUnavailable.BackupStatusAbnormal": { zh: "备份状态异常，无法恢复：{reason}", en: "The backup cannot be restored in its current status: {reason}" },
  "ResourceUnavailable.BackupLockedError": { zh: "备份 `{backupId}` 被其他流程锁定。", en: "The backup `{backupId}` is locked by another operation." },
  "UnauthorizedOperation.NoCAMAuthed": { zh: "无cam 权限：{reason}", en: "Not authorized by CAM: {reason}" },
  "FailedOperation.SystemError": { zh: "系统错误：{reason}", en: "System error: {reason}" },
  "FailedOperation.UnSupportError": { zh: "实例不支持该操作：{reason}", en: "The instance does not support this operation: {reason}" },
  "InvalidParameter.NotSupported": { zh: "参数不支持：{reason}", en: "The parameter value is not supported: {reason}" },
  UnsupportedOperation: { zh: "不支持的操作：{reason}", en: "Unsupported operation: {reason}" },
} satisfies Record<string, Messages>;

export type ErrorCode = keyof typeof catalogue;

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly params: Record<string, string | number> = {},
  ) {
    super(`${code}: ${render(code, params, "en-US")}`);
    this.name = "ApiError";
  }

  messageIn(language: Language): string {
    return render(this.code, this.params, language);
  }
}

function render(code: ErrorCode, params: Record<string, string | number>, language: Language): string {
  const m: Messages = catalogue[code];
  const template = language === "en-US" ? m.en : m.zh;
  return template.replace(/\{(\w+)\}/g, (_, k: string) => (k in params ? String(params[k]) : "")).trim();
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(catalogue, code);
}

/** Shorthands for the errors raised most often. */
export const invalidParameter = (reason: string) => new ApiError("InvalidParameter", { reason });
export const businessParameter = (reason: string) => new ApiError("InvalidParameter.InvalidParameter", { reason });
