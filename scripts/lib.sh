# What the scripts of this directory share (sourced, not run): the one rule for "under CI"
# and the one way they install Debian packages.
#
#   under_ci                    succeeds under CI=true, and only then: the rule of every
#                               test and script of the project (Rust: wasp_fixtures::under_ci,
#                               Python: conftest.under_ci)
#   apt_install TAG PACKAGE...  installs the PACKAGEs dpkg does not list, with apt-get
#   apt_download TAG DIR PACKAGE...
#                               downloads the PACKAGEs' .deb files into DIR (another
#                               architecture's, named PACKAGE:ARCH, for a root of its own),
#                               adding that architecture to dpkg first if it lacks it
#
# apt_install runs apt-get as root, or with passwordless sudo, and waits up to 5 minutes for
# another apt-get to finish rather than fail; it says what it installs on stderr, after
# TAG. Its one failure rule: when it cannot install them (no apt-get, neither root nor
# passwordless sudo, apt-get failing) it says why and returns 1, for its caller to skip
# what needs them; under CI=true, where everything must install, it exits 1 instead.

under_ci() {
    [[ ${CI:-} == true ]]
}

apt_install() {
    local tag=$1 package why= log
    shift
    local missing=() sudo=()
    for package; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    ((${#missing[@]} > 0)) || return 0
    if ! command -v apt-get >/dev/null; then
        why="${missing[*]} missing, and no apt-get to install them"
    elif [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            why="installing ${missing[*]} needs root (or passwordless sudo)"
        fi
    fi
    if [[ -z $why ]]; then
        echo "$tag: installing ${missing[*]}" >&2
        log=$(mktemp)
        local apt=(apt-get -qq -o DPkg::Lock::Timeout=300)
        if { "${sudo[@]}" "${apt[@]}" update &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
            rm -f "$log"
            return 0
        fi
        tail -n 20 "$log" >&2
        rm -f "$log"
        why="apt-get could not install ${missing[*]} (its last lines are above)"
    fi
    echo "$tag: cannot install: $why" >&2
    if under_ci; then
        echo "$tag: CI=true: what the tests need must install" >&2
        exit 1
    fi
    return 1
}

# apt-get's command, as root or with passwordless sudo, into `apt`; or why not, on stderr.
_apt_command() {
    local tag=$1
    if ! command -v apt-get >/dev/null; then
        echo "$tag: no apt-get" >&2
        return 1
    fi
    apt_sudo=()
    if [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            apt_sudo=(sudo -n)
        else
            echo "$tag: apt-get needs root (or passwordless sudo)" >&2
            return 1
        fi
    fi
    apt=(apt-get -qq -o DPkg::Lock::Timeout=300)
}

apt_download() {
    local tag=$1 dir=$2 package arch
    shift 2
    if ! _apt_command "$tag"; then
        under_ci && exit 1
        return 1
    fi
    for package; do
        arch=${package##*:}
        [[ $arch != "$package" ]] || continue
        if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
            echo "$tag: adding the $arch architecture to dpkg, for apt-get download" >&2
            "${apt_sudo[@]}" dpkg --add-architecture "$arch"
            "${apt_sudo[@]}" "${apt[@]}" update >&2
        fi
    done
    if ! apt-cache show "$1" >/dev/null 2>&1; then
        "${apt_sudo[@]}" "${apt[@]}" update >&2
    fi
    if ! (cd "$dir" && "${apt[@]}" download "$@" >&2); then
        echo "$tag: apt-get could not download $*" >&2
        under_ci && exit 1
        return 1
    fi
}
