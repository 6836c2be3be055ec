#!/bin/bash
# users.sh [NAME...]
#
# Create the non-root users ffl's Slurm tests submit jobs as (default:
# ffluser1 ffluser2; two of them, so tests can check that one user's cleanup
# never touches the other's sessions). Idempotent: an existing user is kept
# as it is. Each gets a home (useradd -m) and /bin/bash, and is printed as
# "NAME UID GID HOME".
#
#   tests/slurm/users.sh
#   runuser -u ffluser1 -- sbatch --wrap hostname
set -euo pipefail
die() { echo "users.sh: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
users=("$@")
[ ${#users[@]} -gt 0 ] || users=(ffluser1 ffluser2)

for u in "${users[@]}"; do
  [[ $u =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "$u: not a portable user name"
  if ! getent passwd "$u" >/dev/null; then
    # A concurrent run may create the same user between getent and useradd;
    # useradd then fails and the getent below decides.
    err=$(useradd -m -U -s /bin/bash -c "ffl test user" "$u" 2>&1) ||
      getent passwd "$u" >/dev/null || die "useradd $u failed: $err"
  fi
  IFS=: read -r _ _ uid gid _ home _ < <(getent passwd "$u")
  [ "$uid" != 0 ] || die "$u has uid 0"
  [ -d "$home" ] || die "$u: home $home does not exist"
  echo "$u $uid $gid $home"
done
