// The command, arguments and environment an MCPB host starts a bundle's server with, resolved by
// the official mcpb library's getMcpConfigForManifest from the unpacked bundle's manifest.json
// and the values the user entered (a JSON object on stdin), as one JSON object on stdout.
//   node mcpb_config.mjs UNPACKED_BUNDLE_DIR < user_config.json
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, sep } from "node:path";
import { getMcpConfigForManifest } from "@anthropic-ai/mcpb";

const dir = process.argv[2];
const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
const userConfig = JSON.parse(readFileSync(0, "utf8"));
const home = homedir();
const config = await getMcpConfigForManifest({
  manifest,
  extensionPath: dir,
  systemDirs: { HOME: home, DESKTOP: join(home, "Desktop"), DOCUMENTS: join(home, "Documents"), DOWNLOADS: join(home, "Downloads") },
  userConfig,
  pathSeparator: sep,
});
if (!config) {
  console.error("getMcpConfigForManifest gave no config (a required setting missing?)");
  process.exit(1);
}
process.stdout.write(JSON.stringify(config));
