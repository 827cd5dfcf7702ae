// Child process: sends an 11 MB DescribeInstanceBackups body the way a Node client does, from its own process
// (in the server's process the answer is read before the reset lands, which hides the failure), and prints
// what it got as one JSON line: {"code": ..., "message": ...} or {"error": "ECONNRESET"}.
//   node big-body-client.js PORT http-length|http-chunked|sdk SECRET_ID SECRET_KEY INSTANCE_ID
import http from "node:http";
import * as tencentcloud from "tencentcloud-sdk-nodejs";
import { signV3 } from "./sign";

const [portText, mode, secretId, secretKey, instanceId] = process.argv.slice(2) as [string, string, string, string, string];
const port = Number(portText);
const BIG = 11 * 1024 * 1024;

function viaHttp(chunked: boolean): Promise<unknown> {
  const body = Buffer.concat([Buffer.from(`{"InstanceId":"${instanceId}","InstanceName":"`), Buffer.alloc(BIG, 0x61), Buffer.from(`"}`)]);
  const headers: Record<string, string> = signV3({ secretId, secretKey, host: `127.0.0.1:${port}`, body });
  if (!chunked) headers["Content-Length"] = String(body.length);
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const r = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { Response: { Error?: { Code: string; Message: string } } };
        resolve({ code: r.Response.Error?.Code, message: r.Response.Error?.Message, connection: res.headers.connection });
      });
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    // The whole body is written before anything is read, as the SDK does.
    if (chunked) {
      for (let at = 0; at < body.length; at += 1024 * 1024) req.write(body.subarray(at, at + 1024 * 1024));
      req.end();
    } else req.end(body);
  });
}

async function viaSdk(): Promise<unknown> {
  const client = new tencentcloud.redis.v20180412.Client({
    credential: { secretId, secretKey }, region: "ap-guangzhou",
    profile: { language: "en-US", httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } },
  });
  try {
    await client.DescribeInstanceBackups({ InstanceId: instanceId, InstanceName: "a".repeat(BIG) });
    return { code: "OK" };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return e.code ? { code: e.code, message: e.message } : { error: e.message };
  }
}

(mode === "sdk" ? viaSdk() : viaHttp(mode === "http-chunked")).then((r) => {
  process.stdout.write(`${JSON.stringify(r)}\n`);
});
