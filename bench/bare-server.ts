// The baseline for bench:api: a bare node:http server that reads the request and answers a JSON body of the
// given size, with the same headers our server sends.
import http from "node:http";

const port = Number(process.argv[2]);
const size = Number(process.argv[3] ?? 8000);
const body = JSON.stringify({ Response: { TotalCount: 1, BackupSet: [], Pad: "x".repeat(Math.max(0, size - 80)), RequestId: "00000000-0000-4000-8000-000000000000" } });

http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
}).listen(port, "127.0.0.1");
