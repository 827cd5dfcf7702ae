import { test } from "node:test";
import assert from "node:assert/strict";
import { tc3Signature, sha256Hex, v1StringToSign, v1Signature, parseTc3Authorization, Tc3Input } from "../src/protocol/signature";
import { constantTimeEqual } from "../src/protocol/constant-time";

const KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
const base = { timestamp: "1551113065", date: "2019-02-25", service: "redis", secretKey: KEY, canonicalQuery: "" };

function v3(over: Partial<Tc3Input> & { body?: string; host: string; contentType: string; extra?: Record<string, string> }): string {
  const headerValues: Record<string, string> = { "content-type": over.contentType, host: over.host, ...(over.extra ?? {}) };
  return tc3Signature({
    ...base,
    method: over.method ?? "POST",
    canonicalQuery: over.canonicalQuery ?? "",
    signedHeaders: Object.keys(headerValues),
    headerValues,
    payloadHash: over.payloadHash ?? sha256Hex(over.body ?? ""),
    service: over.service ?? "redis",
  });
}

test("TC3 vector: POST JSON body to redis", () => {
  const body = '{"InstanceId":"crs-abc","Limit":10}';
  assert.equal(sha256Hex(body), "2e335cc5b1d823a8f02f9de914b66e74d654644bc5149ea7192beed27c4a4df2");
  assert.equal(v3({ body, host: "redis.tencentcloudapi.com", contentType: "application/json" }), "f3391f54e09d5a0980780f4e40216f65a300664bc165a2671028cd8122672641");
});

test("TC3 vector: GET with flattened Status in the query", () => {
  assert.equal(
    v3({ method: "GET", canonicalQuery: "InstanceId=crs-abc&Status.0=2&Status.1=4", host: "redis.tencentcloudapi.com", contentType: "application/x-www-form-urlencoded" }),
    "482c542e5e26c582838b8d451294566aca7dec1962be9e63105a1ea7e98d6c57",
  );
});

test("TC3 vector: finance region host", () => {
  assert.equal(v3({ body: '{"Limit":10}', host: "redis.ap-shanghai-fsi.tencentcloudapi.com", contentType: "application/json" }), "796d133e1962bccab8c106a2431a61ea2ff42189798696fdecdc46c3e1f35eb8");
});

test("TC3 vector: official cvm example, with and without x-tc-action signed", () => {
  const body = '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}';
  assert.equal(sha256Hex(body), "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064");
  const common = { body, host: "cvm.tencentcloudapi.com", contentType: "application/json; charset=utf-8", service: "cvm" };
  assert.equal(v3(common), "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168");
  assert.equal(v3({ ...common, extra: { "x-tc-action": "describeinstances" } }), "644be983de9a8a3f00db8eadaba61467c3b429e2215758ba897b738ca469fd26");
});

test("v1 vectors: HmacSHA1 and HmacSHA256", () => {
  const params: [string, string][] = [
    ["Action", "DescribeInstances"], ["InstanceIds.0", "ins-09dx96dg"], ["Limit", "20"], ["Nonce", "11886"], ["Offset", "0"],
    ["Region", "ap-guangzhou"], ["SecretId", "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"], ["Timestamp", "1465185768"], ["Version", "2017-03-12"],
  ];
  const s1 = v1StringToSign("GET", "cvm.tencentcloudapi.com", params);
  assert.equal(s1, "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20&Nonce=11886&Offset=0&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE&Timestamp=1465185768&Version=2017-03-12");
  assert.equal(v1Signature(KEY, s1, "HmacSHA1"), "EliP9YW3pW28FpsEdkXt/+WcGeI=");
  const s256 = v1StringToSign("GET", "cvm.tencentcloudapi.com", [...params, ["SignatureMethod", "HmacSHA256"], ["Signature", "ignored"]]);
  assert.equal(v1Signature(KEY, s256, "HmacSHA256"), "A8uy2/o7WBZXYCTWEFpMrVGhGBVlEGIOioeqRM+fzFs=");
});

test("v1 sorts names in byte order (Ids.12 before Ids.2)", () => {
  assert.equal(v1StringToSign("post", "h", [["Ids.2", "b"], ["Ids.12", "a"]]), "POSTh/?Ids.12=a&Ids.2=b");
});

test("Authorization parsing accepts the SDK form and names what is wrong otherwise", () => {
  const ok = parseTc3Authorization("TC3-HMAC-SHA256 Credential=AKID/2019-02-25/127/tc3_request, SignedHeaders=content-type;host, Signature=" + "a".repeat(64));
  assert.deepEqual(ok, { secretId: "AKID", date: "2019-02-25", service: "127", signedHeaders: ["content-type", "host"], signature: "a".repeat(64) });
  assert.match(String(parseTc3Authorization("HMAC-SHA1 x")), /TC3-HMAC-SHA256/);
  assert.match(String(parseTc3Authorization("TC3-HMAC-SHA256 Credential=AKID/2019-02-25/redis/tc3_request, SignedHeaders=host, Signature=" + "a".repeat(64))), /content-type and host/);
  assert.match(String(parseTc3Authorization("TC3-HMAC-SHA256 Credential=AKID, SignedHeaders=content-type;host, Signature=" + "a".repeat(64))), /SecretId\/Date/);
});

test("signature comparison (constant-time, any lengths, strings or bytes)", () => {
  assert.equal(constantTimeEqual("abc", "abc"), true);
  assert.equal(constantTimeEqual("abc", "abd"), false);
  assert.equal(constantTimeEqual("abc", "abcd"), false);
  assert.equal(constantTimeEqual("", ""), true);
  assert.equal(constantTimeEqual(Buffer.from("mac"), Buffer.from("mac")), true);
  assert.equal(constantTimeEqual(Buffer.from("mac"), Buffer.from("mad")), false);
});
