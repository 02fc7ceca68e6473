#!/usr/bin/env bash
# CycloneDX SBOM of the ClassCord Python package (cyclonedx-py), and optionally a
# list of the operating-system packages inside a built image.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/sbom.sh [--output FILE] [--image IMAGE] [--dry-run] [--help]

Writes a CycloneDX 1.6 JSON SBOM of the classcord Python package, validated
against the CycloneDX schema, to sbom/classcord-VERSION.cdx.json (or FILE).
ClassCord uses only the standard library, so the SBOM has the classcord root
component (name, version, licence) and no third-party components: it is made
from an empty virtual environment, which is exactly what the server needs.

  --output FILE   where to write the SBOM
  --image IMAGE   also list the OS packages of IMAGE (dpkg or apk) into
                  sbom/IMAGE-packages.txt: an inventory, not a vulnerability scan
  --dry-run       print the steps, write nothing
  -h, --help      show this help

Needs cyclonedx-py (pip install cyclonedx-bom; in .venv/bin after scripts/test.sh).
To undo: rm -r sbom/
USAGE
}

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUTPUT=
IMAGE=
DRY_RUN=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --output) OUTPUT=${2:?--output needs a file}; shift ;;
        --image) IMAGE=${2:?--image needs an image name}; shift ;;
        --dry-run) DRY_RUN=1 ;;
        *) echo "sbom.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

PYTHON=${PYTHON:-python3}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' classcord/__init__.py)
[ -n "$VERSION" ] || { echo "sbom.sh: no __version__ in classcord/__init__.py" >&2; exit 1; }
OUTPUT=${OUTPUT:-$ROOT/sbom/classcord-$VERSION.cdx.json}

CYCLONEDX=$ROOT/.venv/bin/cyclonedx-py
[ -x "$CYCLONEDX" ] || CYCLONEDX=$(command -v cyclonedx-py || true)
if [ -z "$CYCLONEDX" ]; then
    echo "sbom.sh: cyclonedx-py not found: pip install cyclonedx-bom (or run scripts/test.sh)" >&2
    exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# cyclonedx-py cannot resolve a dynamic version: give it a copy of pyproject.toml
# with the version from classcord/__init__.py written in.
echo "+ write $WORK/pyproject.toml with version = \"$VERSION\""
sed "s/^dynamic = \[\"version\"\]$/version = \"$VERSION\"/" pyproject.toml >"$WORK/pyproject.toml"
grep -q "^version = \"$VERSION\"$" "$WORK/pyproject.toml" || {
    echo "sbom.sh: could not set the version in the pyproject.toml copy" >&2
    exit 1
}

run "$PYTHON" -m venv --without-pip "$WORK/runtime"
run mkdir -p "$(dirname "$OUTPUT")"
run "$CYCLONEDX" environment "$WORK/runtime/bin/python" \
    --pyproject "$WORK/pyproject.toml" --mc-type application \
    --spec-version 1.6 --output-format JSON --output-reproducible --validate \
    --output-file "$OUTPUT"
echo "sbom.sh: wrote $OUTPUT"

if [ -n "$IMAGE" ]; then
    LIST="$(dirname "$OUTPUT")/$(printf '%s' "$IMAGE" | tr '/:' '__')-packages.txt"
    echo "+ docker run --rm --network none $IMAGE (dpkg-query or apk) > $LIST"
    if [ "$DRY_RUN" -eq 0 ]; then
        docker run --rm --network none --entrypoint sh "$IMAGE" -c \
            'if command -v dpkg-query >/dev/null; then
                 dpkg-query -W -f "\${Package} \${Version} \${Architecture}\n";
             else apk info -v; fi; python3 --version' >"$LIST"
        echo "sbom.sh: wrote $LIST ($(wc -l <"$LIST") lines)"
    fi
fi
