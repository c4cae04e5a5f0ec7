# %pre of cs-invoker-pool (.rpm). The systemd RPM macros are not on the build machine (rpmbuild
# from Debian's rpm package), so these scriptlets spell out
# what the Fedora macros would, guarded so that they work in a chroot or an image build (no
# running systemd) and never fail the transaction. $1: 1 on install, 2 or more on upgrade.
#
# cs-sandbox: the system user the sandbox children drop to. No login shell, no home, a group of
# its own; it must share its uid with no other service (nobody is the fallback, and is shared).
# Created in %pre as the Fedora packaging guidelines do for users (useradd: shadow-utils).
if ! getent passwd cs-sandbox >/dev/null; then
    if getent group cs-sandbox >/dev/null; then
        group_opt="--gid cs-sandbox"
    else
        group_opt="--user-group"
    fi
    # shellcheck disable=SC2086 # group_opt is two words on purpose
    useradd --system $group_opt --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "cs-invoker-pool sandbox children" cs-sandbox || :
fi

# Upgrade of a running daemon: stop it *before* the new files land (it drains: SIGTERM, in-flight
# activations finish, the rest go back to codeQ), and let %post start the new one. A running old
# supervisor must not spawn the new sandbox-child (the protocol handshake would refuse it), and
# codeQ keeps the tasks during the short gap. The .deb does the same (cargo-deb's
# restart-after-upgrade = false). The marker tells %post to start it again.
if [ "$1" -ge 2 ] && [ -d /run/systemd/system ] && \
        systemctl is-active --quiet cs-invoker-pool.service 2>/dev/null; then
    touch /run/cs-invoker-pool.upgrade-restart 2>/dev/null || :
    systemctl stop cs-invoker-pool.service >/dev/null 2>&1 || :
fi
