#!/usr/bin/env node
/**
 * Prepare the viewer folder that Orthanc serves same-origin at /ohif/ (ServeFolders):
 *
 * 1. the prebuilt OHIF app (`@ohif/app` dist/ from the npm registry, fetched with `npm pack`,
 *    checked against the sha512 integrity pinned in package.json "ohif.viewerIntegrity");
 * 2. re-based from "/" to the base path (index.html's absolute URLs, PUBLIC_URL and the
 *    bundles' webpack public path are fixed at build time to "/");
 * 3. app-config.js from deploy/ohif/app-config.js.in (DICOMweb of the same Orthanc);
 * 4. the extension's build (dist/) under pancreas-ai-ext/, and route entry files without an
 *    extension (`pancreas-ai`, `pancreas-ai-worklist`) that Orthanc serves as text/html, so the
 *    viewer's path-based routes load (and reload) without a server-side SPA fallback.
 *
 * Usage: node scripts/prepare-viewer.mjs [--out ../build/ohif] [--base /ohif/] [--dicomweb /dicom-web]
 * Idempotent: the app is fetched and extracted once per version (stamp file).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = resolve(here, "..");
const repo = resolve(pkgDir, "..");
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
const PATCH_VERSION = 1; // bump when the re-basing below changes

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const out = resolve(arg("--out", join(repo, "build", "ohif")));
const base = arg("--base", "/ohif/");
const dicomweb = arg("--dicomweb", "/dicom-web");
if (!base.startsWith("/") || !base.endsWith("/")) throw new Error("--base must start and end with '/'");
const { viewer, viewerVersion, viewerIntegrity, modeRoute, worklistRoute } = pkg.ohif;
const cache = join(repo, "build", ".cache");
const stampText = JSON.stringify({ viewer, viewerVersion, viewerIntegrity, base, PATCH_VERSION });
const stamp = join(out, ".prepared.json");

function sri(file) {
  return "sha512-" + createHash("sha512").update(readFileSync(file)).digest("base64");
}

function fetchViewer() {
  mkdirSync(cache, { recursive: true });
  const tgz = join(cache, `${viewer.replace("@", "").replace("/", "-")}-${viewerVersion}.tgz`);
  if (!existsSync(tgz) || sri(tgz) !== viewerIntegrity) {
    console.log(`fetching ${viewer}@${viewerVersion} with npm pack`);
    execFileSync("npm", ["pack", `${viewer}@${viewerVersion}`, "--pack-destination", cache, "--silent"], {
      stdio: ["ignore", "ignore", "inherit"],
    });
  }
  const actual = sri(tgz);
  if (actual !== viewerIntegrity) {
    throw new Error(`${tgz}: integrity ${actual} differs from package.json's ${viewerIntegrity}`);
  }
  return tgz;
}

function rebase(dist) {
  const index = join(dist, "index.html");
  let html = readFileSync(index, "utf8");
  html = html
    .replaceAll('window.PUBLIC_URL="/"', `window.PUBLIC_URL="${base}"`)
    .replace(/(href|src)="\/(?!\/)/g, `$1="${base}`);
  writeFileSync(index, html);
  for (const name of readdirSync(dist)) {
    if (!name.endsWith(".js")) continue;
    const file = join(dist, name);
    const text = readFileSync(file, "utf8");
    const patched = text.replaceAll('__webpack_require__.p = "/";', `__webpack_require__.p = "${base}";`);
    if (patched !== text) writeFileSync(file, patched);
  }
  const manifest = join(dist, "manifest.json");
  if (existsSync(manifest)) {
    writeFileSync(manifest, readFileSync(manifest, "utf8").replaceAll('"/assets/', `"${base}assets/`));
  }
}

function extract() {
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === stampText) return;
  const tgz = fetchViewer();
  const tmp = `${out}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync("tar", ["-xzf", tgz, "-C", tmp, "package/dist"]);
  rebase(join(tmp, "package", "dist"));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(dirname(out), { recursive: true });
  renameSync(join(tmp, "package", "dist"), out);
  rmSync(tmp, { recursive: true, force: true });
  writeFileSync(stamp, stampText);
  console.log(`OHIF ${viewerVersion} prepared in ${out} for ${base}`);
}

function configure() {
  const template = readFileSync(join(repo, "deploy", "ohif", "app-config.js.in"), "utf8");
  const values = { base, dicomweb, router_basename: base.slice(0, -1) };
  const config = template.replace(/\$\{(\w+)\}/g, (m, key) => {
    if (!(key in values)) throw new Error(`app-config.js.in: unknown placeholder ${m}`);
    return values[key];
  });
  writeFileSync(join(out, "app-config.js"), config);
  const dist = join(pkgDir, "dist");
  if (!existsSync(join(dist, "extension.js"))) throw new Error(`${dist}/extension.js missing: run npm run build`);
  rmSync(join(out, "pancreas-ai-ext"), { recursive: true, force: true });
  cpSync(dist, join(out, "pancreas-ai-ext"), { recursive: true });
  // Route entry files (served as text/html by ServeFolders' "" extension mapping).
  cpSync(join(out, "index.html"), join(out, modeRoute));
  const worklist = `<!doctype html><html lang="en"><head><meta charset="UTF-8">
<title>PancreasAI worklist</title></head>
<body><div id="root" data-viewer-base="${base}"></div>
<script type="module" src="${base}pancreas-ai-ext/worklist.js"></script></body></html>
`;
  writeFileSync(join(out, worklistRoute), worklist);
}

extract();
configure();
console.log(`viewer ready: ${out} (serve it at ${base}; mode route ${base}${modeRoute})`);
