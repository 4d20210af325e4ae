# copkg from cron, for machines without systemd (installed as
# /etc/cron.d/copkg by the Debian package). Where systemd runs, its
# copkg-boot.service and copkg-reconcile.timer do this instead, and these
# lines do nothing. flock -n keeps one reconcile at a time; a reconcile that
# finds another running simply skips this minute.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
@reboot   root  [ -d /run/systemd/system ] || /usr/bin/copkg --config /etc/copkg/config.json boot >>/var/log/copkg-boot.log 2>&1
* * * * * root  [ -d /run/systemd/system ] || flock -n /run/copkg-reconcile.lock /usr/bin/copkg --config /etc/copkg/config.json reconcile >>/var/log/copkg-reconcile.log 2>&1
