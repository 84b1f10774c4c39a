// An MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk), for
// tests/test_mcp_typescript.py: it connects to a mailgent-mcp server, makes the calls it is
// given in order on one session, and prints one JSON line per call.
//
//     node sdk_client.mjs < plan.json
//
// plan.json:
//   {"server": {"stdio": {"command": "...", "args": [...], "env": {...}}}
//           or {"http": {"url": "http://127.0.0.1:PORT/mcp"}},
//    "calls": [{"method": "tools/list"},
//              {"method": "tools/call", "name": "vault_totp", "arguments": {"name": "github"}}]}
//
// Over HTTP the bearer token comes from MAILGENT_TOKEN in this process's environment (never
// the command line), sent as "Authorization: Bearer <token>"; without it no header is sent.
// Every request runs with the SDK's defaults: no timeout or progress option is set, so a call
// is bound by the SDK's own default request timeout, as in any client built on it.
//
// Output on stdout, one JSON object a line:
//   {"kind": "connected", "server": {name, version}, "elapsed_ms": N, "default_timeout_ms": T}
//   {"kind": "result", "call": I, "method": M, "started_ms": T0, "ended_ms": T1, "result": {...}}
//   {"kind": "error", "call": I, "method": M, "started_ms": T0, "ended_ms": T1, "error": {code, message}}
//   {"kind": "connect_error", "error": {code, message}}
// started_ms and ended_ms are Unix times in milliseconds around the request. A tool that fails
// is a "result" whose result.isError is true; "error" is a JSON-RPC error (such as the SDK's
// -32001 request timeout, after default_timeout_ms). Exit status: 0 when every call was made, 1 when the client could
// not connect (the reason is also on stderr), 2 for a malformed plan. The stdio server's own
// stderr is passed through to this process's stderr.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { DEFAULT_REQUEST_TIMEOUT_MSEC } from "@modelcontextprotocol/sdk/shared/protocol.js";

function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function errorFields(error) {
  return { code: typeof error?.code === "number" ? error.code : null, message: String(error?.message ?? error) };
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function transportFor(server) {
  if (server.stdio) {
    const { command, args = [], env } = server.stdio;
    return new StdioClientTransport({ command, args, env, stderr: "inherit" });
  }
  if (server.http) {
    const token = process.env.MAILGENT_TOKEN;
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    return new StreamableHTTPClientTransport(new URL(server.http.url), { requestInit: { headers } });
  }
  throw new Error("plan.server needs a stdio or an http entry");
}

async function call(client, step) {
  if (step.method === "tools/list") return client.listTools();
  if (step.method === "tools/call") return client.callTool({ name: step.name, arguments: step.arguments ?? {} });
  throw new Error(`unknown method in plan: ${step.method}`);
}

async function main() {
  let plan;
  try {
    plan = JSON.parse(await readStdin());
  } catch (error) {
    process.stderr.write(`sdk_client: the plan on stdin is not JSON: ${error.message}\n`);
    return 2;
  }
  const client = new Client({ name: "mailgent-ts-sdk-test", version: "1.0.0" });
  const start = Date.now();
  try {
    await client.connect(transportFor(plan.server));
  } catch (error) {
    process.stderr.write(`sdk_client: could not connect: ${error.stack ?? error}\n`);
    emit({ kind: "connect_error", error: errorFields(error) });
    await client.close().catch(() => {}); // a stdio server that did start must not outlive us
    return 1;
  }
  emit({ kind: "connected", server: client.getServerVersion() ?? null, elapsed_ms: Date.now() - start,
         default_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MSEC });
  try {
    for (const [index, step] of (plan.calls ?? []).entries()) {
      const started = Date.now();
      try {
        const result = await call(client, step);
        emit({ kind: "result", call: index, method: step.method, started_ms: started, ended_ms: Date.now(), result });
      } catch (error) {
        const what = `${step.method} ${step.name ?? ""}`.trim();
        process.stderr.write(`sdk_client: call ${index} (${what}) failed: ${error.stack ?? error}\n`);
        emit({ kind: "error", call: index, method: step.method, started_ms: started, ended_ms: Date.now(),
               error: errorFields(error) });
      }
    }
  } finally {
    await client.close();
  }
  return 0;
}

process.exitCode = await main();
