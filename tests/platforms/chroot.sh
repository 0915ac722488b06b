# tests/platforms/chroot.sh (sourced): prepare ROOT, another system's root folder, to run the
# suite's programs in, inside the harness's private mount namespace (the mounts vanish with it):
#   root_mounts ROOT   /proc, /dev, a fresh /tmp, the repository and the harness's folder at
#                      the same paths (tests write fixtures there; certificates, token cache),
#                      this namespace's /etc/hosts (read-only). Undone on exit.
# Needs $repo and $PGENTRA_TEST_DIR (set by the harness).
chroot_mounts=()
chroot_bind() { # SRC DST [ro]
  if [ -d "$1" ]; then mkdir -p "$2"; else [ -e "$2" ] || touch "$2"; fi
  mount --rbind "$1" "$2"
  chroot_mounts=("$2" "${chroot_mounts[@]}")
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}
chroot_cleanup() { local m; for m in "${chroot_mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done; chroot_mounts=(); }
root_mounts() {
  local r=$1
  trap chroot_cleanup EXIT
  mkdir -p "$r/proc" "$r/dev" "$r/tmp" "$r/etc"
  mount -t proc proc "$r/proc"; chroot_mounts=("$r/proc" "${chroot_mounts[@]}")
  chroot_bind /dev "$r/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"; chroot_mounts=("$r/tmp" "${chroot_mounts[@]}")
  chroot_bind "$repo" "$r$repo"
  chroot_bind "$PGENTRA_TEST_DIR" "$r$PGENTRA_TEST_DIR"
  chroot_bind /etc/hosts "$r/etc/hosts" ro
}
