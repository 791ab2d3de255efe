# Sourced by the hooks. mmdebstrap runs each hook with the root file system as $1.
set -euo pipefail
ROOT=${1:?hook needs the root directory}
FILES=${APPLIANCE_IMAGE_FILES:?set by image/build}

# Run a command inside the image with a clean environment (nothing leaks in from the host).
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$@"
}

# install MODE SRC DEST: a file from image/files into the image.
put() {
    install -D -m "$1" "$FILES/$2" "$ROOT/$3"
}
