// Every string the console shows, in both languages of the API's `Language` (zh-CN, en-US). `{name}` placeholders
// are filled by t(); the values are rendered as text like everything else.

export type Lang = "zh-CN" | "en-US";
export const LANGS: ReadonlyArray<{ value: Lang; label: string }> = [
  { value: "zh-CN", label: "简体中文" },
  { value: "en-US", label: "English" },
];

const strings = {
  brand: { zh: "crs-backup 控制台", en: "crs-backup console" },
  "nav.instances": { zh: "实例", en: "Instances" },
  "nav.tasks": { zh: "任务", en: "Tasks" },
  "header.region": { zh: "地域", en: "Region" },
  "header.language": { zh: "语言", en: "Language" },
  "header.account": { zh: "账号 {account}", en: "Account {account}" },
  "header.logout": { zh: "退出登录", en: "Log out" },

  "login.title": { zh: "登录控制台", en: "Log in to the console" },
  "login.intro": { zh: "使用 API 密钥登录。密钥只用于本次换取会话，不会保存在浏览器中。", en: "Log in with an API key. The key is exchanged once for a session and is not kept in the browser." },
  "login.secretId": { zh: "SecretId", en: "SecretId" },
  "login.secretKey": { zh: "SecretKey", en: "SecretKey" },
  "login.token": { zh: "Token（临时密钥才需要）", en: "Token (temporary credentials only)" },
  "login.submit": { zh: "登录", en: "Log in" },
  "login.busy": { zh: "正在登录…", en: "Logging in…" },
  "login.failed": { zh: "SecretId 或 SecretKey 不正确。", en: "The SecretId or the SecretKey is incorrect." },
  "login.token.failed": { zh: "临时密钥的 Token 无效或缺失。", en: "The Token of this temporary credential is missing or invalid." },
  "login.limited": { zh: "登录尝试过于频繁，请稍后再试。", en: "Too many login attempts; try again in a few seconds." },
  "session.expired": { zh: "会话已过期，请重新登录。", en: "Your session has ended; please log in again." },

  "common.loading": { zh: "加载中…", en: "Loading…" },
  "common.none": { zh: "—", en: "—" },
  "common.cancel": { zh: "取消", en: "Cancel" },
  "common.close": { zh: "关闭", en: "Close" },
  "common.save": { zh: "保存", en: "Save" },
  "common.saved": { zh: "已保存", en: "Saved" },
  "common.apply": { zh: "筛选", en: "Apply" },
  "common.reset": { zh: "重置", en: "Reset" },
  "common.search": { zh: "搜索", en: "Search" },
  "common.refresh": { zh: "刷新", en: "Refresh" },
  "common.error": { zh: "出错了：{message}", en: "Something went wrong: {message}" },
  "common.details": { zh: "详情", en: "Details" },
  "common.yes": { zh: "是", en: "Yes" },
  "common.no": { zh: "否", en: "No" },
  "pager.summary": { zh: "共 {total} 条，第 {page} / {pages} 页", en: "{total} in all, page {page} of {pages}" },
  "pager.prev": { zh: "上一页", en: "Previous" },
  "pager.next": { zh: "下一页", en: "Next" },
  "pager.first": { zh: "首页", en: "First" },
  "pager.last": { zh: "末页", en: "Last" },

  "age.seconds": { zh: "{n} 秒前", en: "{n} s ago" },
  "age.minutes": { zh: "{n} 分钟前", en: "{n} min ago" },
  "age.hours": { zh: "{n} 小时前", en: "{n} h ago" },
  "age.day": { zh: "1 天前", en: "1 day ago" },
  "age.days": { zh: "{n} 天前", en: "{n} days ago" },
  "in.now": { zh: "进行中", en: "open now" },
  "in.minutes": { zh: "{n} 分钟后", en: "in {n} min" },
  "in.hours": { zh: "{n} 小时后", en: "in {n} h" },
  "in.day": { zh: "1 天后", en: "in 1 day" },
  "in.days": { zh: "{n} 天后", en: "in {n} days" },

  "instances.title": { zh: "实例", en: "Instances" },
  "instances.search": { zh: "按实例 ID 或名称搜索", en: "Search by instance ID or name" },
  "instances.empty": { zh: "该地域没有实例。", en: "No instances in this region." },
  "instances.col.instance": { zh: "实例", en: "Instance" },
  "instances.col.status": { zh: "状态", en: "Status" },
  "instances.col.version": { zh: "版本", en: "Version" },
  "instances.col.lastBackup": { zh: "最近备份", en: "Last backup" },
  "instances.col.nextWindow": { zh: "下次自动备份", en: "Next scheduled window" },
  "instances.col.backups": { zh: "备份数", en: "Backups" },
  "instances.col.trend": { zh: "备份大小趋势", en: "Size trend" },
  "instance.state.running": { zh: "运行中", en: "Running" },
  "instance.state.catalogue": { zh: "仅目录", en: "Catalogue only" },
  "instance.state.catalogue.hint": { zh: "未登记 Redis 服务器：无法备份或恢复到此实例", en: "No Redis server registered: cannot be backed up or restored into" },
  "instance.noBackups": { zh: "暂无备份", en: "No backups yet" },
  "instance.noSchedule": { zh: "不自动备份", en: "No automatic backups" },
  "instance.hidden": { zh: "无权限查看", en: "Not permitted" },

  "status.1": { zh: "备份中", en: "Backing up" },
  "status.2": { zh: "正常", en: "Normal" },
  "status.3": { zh: "转换 RDB 中", en: "Exporting RDB" },
  "status.4": { zh: "已转换 RDB", en: "RDB exported" },
  "status.-1": { zh: "已过期", en: "Expired" },
  "status.-2": { zh: "已删除", en: "Deleted" },
  "backupType.0": { zh: "手动", en: "Manual" },
  "backupType.1": { zh: "自动", en: "Automatic" },
  "backupType.2": { zh: "变配触发", en: "Spec change" },
  "flag.locked": { zh: "已锁定", en: "Locked" },
  "flag.encrypted": { zh: "已加密", en: "Encrypted" },
  "flag.full": { zh: "全量", en: "Full" },

  "detail.back": { zh: "← 全部实例", en: "← All instances" },
  "detail.endpoint": { zh: "地址", en: "Endpoint" },
  "detail.version": { zh: "Redis 版本", en: "Redis version" },
  "detail.type": { zh: "实例类型", en: "Instance type" },
  "detail.shards": { zh: "分片数", en: "Shards" },
  "detail.nextWindow": { zh: "下次自动备份", en: "Next automatic backup" },
  "detail.tasks": { zh: "查看该实例的任务", en: "This instance's tasks" },
  "detail.notFound": { zh: "实例 {id} 不存在。", en: "There is no instance {id}." },

  "backupNow.title": { zh: "立即备份", en: "Back up now" },
  "backupNow.remark": { zh: "备注（可选）", en: "Remark (optional)" },
  "backupNow.submit": { zh: "开始备份", en: "Start backup" },
  "task.progress": { zh: "任务 {id}：{state} {progress}%", en: "Task {id}: {state} {progress}%" },
  "task.failedWith": { zh: "任务 {id} 失败：{message}", en: "Task {id} failed: {message}" },

  "schedule.title": { zh: "自动备份设置", en: "Automatic backups" },
  "schedule.days": { zh: "备份日期", en: "Days" },
  "schedule.window": { zh: "备份时间段", en: "Window" },
  "schedule.from": { zh: "开始", en: "From" },
  "schedule.to": { zh: "结束", en: "To" },
  "schedule.retention": { zh: "保留天数", en: "Keep backups (days)" },
  "schedule.zone": { zh: "服务器时区：{zone}", en: "Server time zone: {zone}" },
  "weekday.Monday": { zh: "周一", en: "Mon" },
  "weekday.Tuesday": { zh: "周二", en: "Tue" },
  "weekday.Wednesday": { zh: "周三", en: "Wed" },
  "weekday.Thursday": { zh: "周四", en: "Thu" },
  "weekday.Friday": { zh: "周五", en: "Fri" },
  "weekday.Saturday": { zh: "周六", en: "Sat" },
  "weekday.Sunday": { zh: "周日", en: "Sun" },

  "chart.title": { zh: "备份大小与耗时", en: "Backup size and duration" },
  "chart.size": { zh: "大小", en: "Size" },
  "chart.duration": { zh: "耗时", en: "Duration" },
  "chart.empty": { zh: "还没有已完成的备份。", en: "No finished backups yet." },
  "chart.note": { zh: "最近 {n} 个已完成的备份（遵循下方的时间筛选）", en: "The latest {n} finished backups (within the time filter below)" },

  "backups.title": { zh: "备份列表", en: "Backups" },
  "backups.filter.status": { zh: "状态", en: "Status" },
  "backups.filter.begin": { zh: "开始时间从", en: "Started from" },
  "backups.filter.end": { zh: "到", en: "to" },
  "backups.empty": { zh: "没有符合条件的备份。", en: "No backups match." },
  "backups.col.start": { zh: "开始时间", en: "Start time" },
  "backups.col.end": { zh: "结束时间", en: "End time" },
  "backups.col.id": { zh: "备份 ID", en: "Backup ID" },
  "backups.col.type": { zh: "类型", en: "Type" },
  "backups.col.status": { zh: "状态", en: "Status" },
  "backups.col.size": { zh: "大小", en: "Size" },
  "backups.col.duration": { zh: "耗时", en: "Duration" },
  "backups.col.fileType": { zh: "文件类型", en: "File type" },
  "backups.col.expire": { zh: "过期时间", en: "Expires" },
  "backups.col.remark": { zh: "备注", en: "Remark" },
  "backups.col.actions": { zh: "操作", en: "Actions" },
  "backups.download": { zh: "下载", en: "Download" },
  "backups.restore": { zh: "恢复", en: "Restore" },
  "backups.delete": { zh: "删除", en: "Delete" },

  "download.title": { zh: "下载备份 {id}", en: "Download backup {id}" },
  "download.preparing": { zh: "正在准备 RDB 文件…", en: "Preparing the RDB files…" },
  "download.note": { zh: "链接 6 小时内有效。", en: "The links work for 6 hours." },

  "restore.title": { zh: "恢复备份 {id}", en: "Restore backup {id}" },
  "restore.target": { zh: "恢复到实例", en: "Into instance" },
  "restore.password": { zh: "目标实例密码", en: "Target instance password" },
  "restore.warning": { zh: "目标实例的现有数据将被备份中的数据替换。", en: "The target instance's data will be replaced by the backup's." },
  "restore.submit": { zh: "开始恢复", en: "Start restore" },
  "restore.started": { zh: "恢复任务 {id} 已开始。", en: "Restore task {id} started." },

  "delete.title": { zh: "删除备份 {id}", en: "Delete backup {id}" },
  "delete.warning": { zh: "备份文件将被删除，记录保留为“已删除”。此操作无法撤销。", en: "The backup's files are removed and its record stays as Deleted. This cannot be undone." },
  "delete.submit": { zh: "删除", en: "Delete" },

  "tasks.title": { zh: "任务", en: "Tasks" },
  "tasks.empty": { zh: "暂无任务。", en: "No tasks yet." },
  "tasks.col.id": { zh: "任务 ID", en: "Task ID" },
  "tasks.col.type": { zh: "类型", en: "Type" },
  "tasks.col.instance": { zh: "实例", en: "Instance" },
  "tasks.col.start": { zh: "开始时间", en: "Started" },
  "tasks.col.end": { zh: "结束时间", en: "Ended" },
  "tasks.col.progress": { zh: "进度", en: "Progress" },
  "tasks.col.result": { zh: "结果", en: "Result" },
  "tasks.filter.instance": { zh: "只看实例 {id}", en: "Instance {id} only" },
  "tasks.filter.all": { zh: "查看全部", en: "Show all" },
  "tasks.live": { zh: "实时刷新中", en: "Live" },
  "result.0": { zh: "等待中", en: "Waiting" },
  "result.1": { zh: "运行中", en: "Running" },
  "result.2": { zh: "成功", en: "Succeeded" },
  "result.4": { zh: "失败", en: "Failed" },
  "taskType.009": { zh: "导出备份", en: "Export backup" },
  "taskType.010": { zh: "恢复备份", en: "Restore backup" },
  "taskType.012": { zh: "手动备份", en: "Manual backup" },
  "taskType.014": { zh: "删除备份", en: "Delete backup" },
  "taskType.017": { zh: "自动备份", en: "Automatic backup" },
  "taskType.046": { zh: "清理过期备份", en: "Remove expired backup" },
} satisfies Record<string, { zh: string; en: string }>;

export type Key = keyof typeof strings;

export function has(key: string): key is Key {
  return Object.prototype.hasOwnProperty.call(strings, key);
}

export function translate(lang: Lang, key: Key, vars: Record<string, string | number> = {}): string {
  const entry = strings[key];
  const template = lang === "en-US" ? entry.en : entry.zh;
  return template.replace(/\{(\w+)\}/g, (_, k: string) => (k in vars ? String(vars[k]) : ""));
}

export type T = (key: Key, vars?: Record<string, string | number>) => string;

export function initialLang(stored: string | null, browser: string | undefined): Lang {
  if (stored === "zh-CN" || stored === "en-US") return stored;
  return browser?.toLowerCase().startsWith("zh") ? "zh-CN" : "en-US";
}
