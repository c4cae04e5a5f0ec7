# %post of cs-invoker-pool (.rpm): the equivalent of %systemd_post. $1: 1 on install, 2 or more on
# upgrade. On a first install the unit is enabled or not according to the system's presets (RPM
# distributions disable services unless a preset says otherwise); it is not started, as is the
# RPM convention: edit /etc/cs-invoker-pool/config.yaml, then
# `systemctl enable --now cs-invoker-pool`. After an upgrade, start the daemon %pre stopped.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload preset cs-invoker-pool.service >/dev/null 2>&1 || :
fi
if [ -e /run/cs-invoker-pool.upgrade-restart ]; then
    rm -f /run/cs-invoker-pool.upgrade-restart
    if [ -d /run/systemd/system ]; then
        systemctl start cs-invoker-pool.service >/dev/null 2>&1 || :
    fi
fi
