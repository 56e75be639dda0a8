#!/usr/bin/env bash
# Runs inside the build container (no network, uid 1000) and drives the Heroku buildpack API v2:
# detect (unless pinned), compile each buildpack in order, then the last one's release.
# Reads SLIPWAY_BP_COUNT, SLIPWAY_BP_NAME_<i> and SLIPWAY_PINNED; buildpack i is mounted at
# /tmp/buildpacks/<i>. Reports to the platform through /tmp/out and its exit status:
#   0 built, 3 nothing detected, 4 a compile failed, 5 release failed, 6 a pinned buildpack's
#   detect refused the app (out/failed = the index). out/buildpacks lists the indices that ran.
set -o pipefail

BUILD_DIR=/tmp/build
CACHE_DIR=/tmp/cache
ENV_DIR=/tmp/env
OUT=/tmp/out
export BUILD_DIR CACHE_DIR ENV_DIR
export STACK=slipway HOME=/home/slipway

count=${SLIPWAY_BP_COUNT:?}
name_of() { local var="SLIPWAY_BP_NAME_$1"; printf '%s' "${!var}"; }
# `slipway buildpacks:test` asks for each phase's duration (SLIPWAY_PHASE_TIMES=1).
now_us() { printf '%s' "${EPOCHREALTIME/./}"; }
took() {
  if [ "${SLIPWAY_PHASE_TIMES:-0}" = 1 ]; then
    local us=$(($(now_us) - $2))
    printf '       %s took %d.%03d s\n' "$1" $((us / 1000000)) $((us / 1000 % 1000))
  fi
}

# Buildpacks are mounted read-only; each runs from a private writable copy because the v2 API
# has it write its `export` file next to its bin/.
work=$(mktemp -d /tmp/buildpacks-run.XXXXXX)
for ((i = 0; i < count; i++)); do
  cp -R "/tmp/buildpacks/$i" "$work/$i"
done

chosen=()
if [ "${SLIPWAY_PINNED:-0}" = 1 ]; then
  for ((i = 0; i < count; i++)); do chosen+=("$i"); done
else
  also=()
  for ((i = 0; i < count; i++)); do
    [ -x "$work/$i/bin/detect" ] || continue
    t0=$(now_us)
    if label=$(cd "$BUILD_DIR" && "$work/$i/bin/detect" "$BUILD_DIR" </dev/null); then
      took "detect ($(name_of "$i"), matched)" "$t0"
      if [ ${#chosen[@]} -eq 0 ]; then
        chosen=("$i")
        label=${label%%$'\n'*}
        echo "-----> $(name_of "$i") app detected${label:+ ($label)}"
      else
        also+=("$(name_of "$i")")
      fi
    else
      took "detect ($(name_of "$i"), no match)" "$t0"
    fi
  done
  if [ ${#chosen[@]} -eq 0 ]; then
    exit 3
  fi
  if [ ${#also[@]} -gt 0 ]; then
    echo "       also matched: ${also[*]} (pin buildpacks with a .buildpacks file to use several)"
  fi
fi

for i in "${chosen[@]}"; do
  name=$(name_of "$i")
  echo "-----> Running buildpack $name"
  if [ ! -x "$work/$i/bin/compile" ]; then
    echo "-----> Buildpack $name has no executable bin/compile"
    echo "$i" >"$OUT/failed"
    exit 4
  fi
  # A pinned buildpack still checks the app, as Heroku does, but on the BUILD_DIR the buildpacks
  # before it left: a first one may produce what the next one detects.
  if [ "${SLIPWAY_PINNED:-0}" = 1 ] && [ -x "$work/$i/bin/detect" ]; then
    t0=$(now_us)
    if label=$(cd "$BUILD_DIR" && "$work/$i/bin/detect" "$BUILD_DIR" </dev/null); then
      label=${label%%$'\n'*}
      echo "-----> $name app detected${label:+ ($label)}"
      took "detect ($name, matched)" "$t0"
    else
      echo "-----> App not compatible with buildpack $name"
      echo "$i" >"$OUT/failed"
      exit 6
    fi
  fi
  t0=$(now_us)
  (cd "$BUILD_DIR" && "$work/$i/bin/compile" "$BUILD_DIR" "$CACHE_DIR" "$ENV_DIR" </dev/null)
  status=$?
  took "compile ($name)" "$t0"
  if [ $status -ne 0 ]; then
    echo "$i $status" >"$OUT/failed"
    exit 4
  fi
  if [ -f "$work/$i/export" ]; then
    # shellcheck disable=SC1090
    . "$work/$i/export"
  fi
done

last=${chosen[${#chosen[@]} - 1]}
if [ -x "$work/$last/bin/release" ]; then
  t0=$(now_us)
  if ! (cd "$BUILD_DIR" && "$work/$last/bin/release" "$BUILD_DIR" </dev/null >"$OUT/release.yml"); then
    echo "$last" >"$OUT/failed"
    exit 5
  fi
  took "release ($(name_of "$last"))" "$t0"
else
  echo "       $(name_of "$last") has no bin/release: no default process types (the Procfile decides)"
fi

# Indices, not names: the platform maps them to the buildpacks it mounted and checks them, as
# anything in /tmp/out may have been rewritten by the code that just ran.
for i in "${chosen[@]}"; do echo "$i"; done >"$OUT/buildpacks"
exit 0
