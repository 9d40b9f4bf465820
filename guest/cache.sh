# guest/cache.sh - sourced by guest/kernel/build.sh and guest/crun/build.sh:
# where their builds are cached, outside the clone, so a second clone or a
# CI run with the same inputs builds nothing. $RUNM_CACHE, else
# /var/cache/runm if it can be written, else ${XDG_CACHE_HOME:-~/.cache}/runm.
# Prints the absolute path, SUBDIR (and ccache/) created under it.
runm_cache_root() { # SUBDIR
	local root
	if [ -n "${RUNM_CACHE:-}" ]; then
		root=$RUNM_CACHE
	elif mkdir -p /var/cache/runm 2>/dev/null && [ -w /var/cache/runm ]; then
		root=/var/cache/runm
	else
		root=${XDG_CACHE_HOME:-$HOME/.cache}/runm
	fi
	mkdir -p "$root/$1" "$root/ccache" && (cd "$root" && pwd)
}
