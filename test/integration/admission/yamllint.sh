#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# yamllint (strict, with the repository's .yamllint) on every YAML file of
# the admission work: the policy, the examples, the rendered Deployment, the
# case table and the golden files.
set -o errexit -o nounset -o pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "Usage: $0   (ATE_SOURCE_DIR: repository root; default: derived from \$0)"
  exit 0
fi
src=${ATE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
if ! command -v yamllint >/dev/null 2>&1; then
  echo "SKIP: yamllint is not installed (hack/install-deps.sh installs it)"
  exit 77
fi
cd "$src"
yamllint --strict -c .yamllint .yamllint deploy/kustomize/base/policy deploy/examples \
  deploy/rendered test/integration/admission
echo "yamllint: clean"
