#!/usr/bin/env bash
# Writes the NuGet packages (ErrorMonitor, ErrorMonitor.Web, ErrorMonitor.Core) and their symbol packages
# (.snupkg) into artifacts/ (or the folder given as the first argument), from a deterministic Release build
# with SourceLink. A second argument sets a version suffix (e.g. `./pack.sh artifacts local.1` gives
# 0.9.0-local.1).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-artifacts}
suffix=${2:-}
args=(-c Release -o "$out" -nologo -p:ContinuousIntegrationBuild=true)
[ -n "$suffix" ] && args+=(--version-suffix "$suffix")
for proj in src/Core/ErrorMonitor.Core.fsproj src/Web/ErrorMonitor.Web.fsproj src/CSharpFacade/ErrorMonitor.csproj; do
    dotnet pack "$proj" "${args[@]}"
done
ls -1 "$out"
