# %postun of cs-invoker-pool (.rpm). $1: 0 on erase, 1 or more on upgrade. systemd re-reads its
# units either way. Unlike %systemd_postun_with_restart there is no try-restart on upgrade: the
# new package's %pre stopped the daemon before its files landed and its %post started it again,
# so a restart here would only drain it a second time.
# The cs-sandbox user is kept on erase, as the Fedora guidelines ask: a freed uid could later go
# to another user, who would then own whatever is left behind.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
