# Shared by bench/run and bench/ab (sourced, not run).

# prepare_layer WORK BASE: an overlay of the tree BASE at WORK/prep/root
# (upper layer WORK/prep/upper) with python3.11-venv installed, so apt is
# not timed. It is left mounted for the caller to add to, then unmount.
prepare_layer() {
  local work=$1 base=$2 prep=$1/prep
  mkdir -p "$prep"/{upper,work,root}
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$prep/upper,workdir=$prep/work" "$prep/root"
  mount -t proc proc "$prep/root/proc"
  printf '#!/bin/sh\nexit 101\n' > "$prep/root/usr/sbin/policy-rc.d"; chmod 755 "$prep/root/usr/sbin/policy-rc.d"
  chroot "$prep/root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends python3.11-venv >"$work/prep-apt.log" 2>&1 \
    || { echo "bench: preparing the tree failed:" >&2; tail -20 "$work/prep-apt.log" >&2; exit 1; }
  rm -f "$prep/root/usr/sbin/policy-rc.d"
  umount "$prep/root/proc"
}
