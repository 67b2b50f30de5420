# Sourced by the scripts in infra/images: podman set up as ../shared/docs/containers.md says (runc,
# cgroupfs, no default ulimits: crun and the systemd cgroup manager fail on these machines), and the
# cache dir the base image's downloads are kept in.
LORACAST_CACHE_DIR=${LORACAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/loracast}
mkdir -p "$LORACAST_CACHE_DIR"
if [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF=$LORACAST_CACHE_DIR/containers.conf
  printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    >"$CONTAINERS_CONF"
fi
# The image names the Dockerfiles' FROM line and the smoke test use.
BASE_IMAGE=docker.io/library/node:24-bookworm-slim
IMAGE_TAG=${LORACAST_IMAGE_TAG:-dev}
pod() { podman --runtime runc "$@"; }
