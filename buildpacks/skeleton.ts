/**
 * The files `slipway buildpacks:new` writes: a buildpack that works as it is (it detects a
 * `hello.txt`, copies it into a tiny web root and serves it) and says in comments what each
 * phase of the Heroku buildpack API v2 is for. Pure.
 */
export interface SkeletonFile {
  path: string;
  text: string;
  executable: boolean;
}

export function scaffoldFiles(name: string): SkeletonFile[] {
  return [
    {
      path: 'bin/detect',
      executable: true,
      text: `#!/usr/bin/env bash
# bin/detect BUILD_DIR
#
# Decides whether this buildpack applies to the app in BUILD_DIR. Exit 0 and print a short
# label (shown as "-----> ${name} app detected (<label>)") to claim the app; exit 1 otherwise.
# Runs only when the app does not pin its buildpacks; keep it fast and side-effect free.
set -euo pipefail
BUILD_DIR=$1

if [ -f "$BUILD_DIR/hello.txt" ]; then
  echo "${name}"
  exit 0
fi
exit 1
`,
    },
    {
      path: 'bin/compile',
      executable: true,
      text: `#!/usr/bin/env bash
# bin/compile BUILD_DIR CACHE_DIR ENV_DIR
#
# Turns the pushed source in BUILD_DIR into a runnable app, in place. The working directory is
# BUILD_DIR. Whatever is in BUILD_DIR afterwards is the app; it runs from /app.
#   CACHE_DIR  kept between builds of the same app: put downloads and build caches there.
#   ENV_DIR    one file per config var (name = file name, value = contents). Read what you need;
#              do not export everything blindly.
# There is no network: dependencies come from the read-only mirror at /mirror. Print progress:
# "-----> " starts a step, other lines are indented under it. A non-zero exit fails the push and
# the running release keeps serving.
# To hand variables to a buildpack that runs after this one, write shell "export" lines to
# \$BP_DIR/export. To set the environment of the running app, write a script into
# BUILD_DIR/.profile.d/ (sourced before every process starts).
set -euo pipefail
BUILD_DIR=$1
CACHE_DIR=$2
ENV_DIR=$3
BP_DIR=$(cd "$(dirname "\${BASH_SOURCE[0]}")/.." && pwd)

echo "-----> Preparing hello.txt"
count=$(cat "$CACHE_DIR/${name}-builds" 2>/dev/null || echo 0)
echo $((count + 1)) >"$CACHE_DIR/${name}-builds"
echo "build number $((count + 1)) of this app (counted in CACHE_DIR)"

greeting=Hello
if [ -f "$ENV_DIR/GREETING" ]; then greeting=$(cat "$ENV_DIR/GREETING"); fi
mkdir -p "$BUILD_DIR/site"
{ echo "$greeting"; cat "$BUILD_DIR/hello.txt"; } >"$BUILD_DIR/site/index.html"

mkdir -p "$BUILD_DIR/.profile.d"
echo 'export HELLO_SITE=/app/site' >"$BUILD_DIR/.profile.d/${name}.sh"
echo "export ${name.toUpperCase().replace(/-/g, '_')}_BUILT=1" >"$BP_DIR/export"
`,
    },
    {
      path: 'bin/release',
      executable: true,
      text: `#!/usr/bin/env bash
# bin/release BUILD_DIR
#
# Optional. Prints YAML: default_process_types (used when the app has no Procfile) and
# config_vars (defaults; the app's own config wins). Only the last buildpack's release counts.
# Commands run through bash in /app, so \$PORT expands; the web process must listen on it.
cat <<'YAML'
---
default_process_types:
  web: cd site && exec python3 -m http.server "$PORT"
YAML
`,
    },
    {
      path: 'buildpack.toml',
      executable: false,
      text: `# Read by \`slipway buildpacks:list\` for the version column.
[buildpack]
name = "${name}"
version = "0.1.0"
`,
    },
    {
      path: 'README.md',
      executable: false,
      text: `# ${name}

A Slipway buildpack (Heroku buildpack API v2).

- \`bin/detect BUILD_DIR\`: claims apps with a \`hello.txt\`.
- \`bin/compile BUILD_DIR CACHE_DIR ENV_DIR\`: builds \`site/index.html\` from it.
- \`bin/release BUILD_DIR\`: serves \`site/\` as the \`web\` process.

Try it without deploying anything:

    mkdir -p /tmp/hello-app && echo world > /tmp/hello-app/hello.txt
    slipway buildpacks:test ./${name} /tmp/hello-app

Install it and use it:

    slipway buildpacks:install ./${name}
    echo ${name} > .buildpacks        # in the app, or: slipway buildpacks:set <app> ${name}
`,
    },
  ];
}
