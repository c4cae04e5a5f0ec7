# %preun of cs-invoker-pool (.rpm): the equivalent of %systemd_preun. $1: 0 on erase, 1 or more
# on upgrade. On erase, disable the unit and stop the daemon (it drains: SIGTERM, up to
# TimeoutStopSec). On an upgrade nothing happens here: the new package's %pre stopped the daemon
# before its files landed and its %post started it again.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now cs-invoker-pool.service >/dev/null 2>&1 || :
    else
        systemctl --no-reload disable cs-invoker-pool.service >/dev/null 2>&1 || :
    fi
fi
