dnl mxguard for Sendmail: the milter and the macros it needs (see mxguard(8) and README.md).
dnl Include it from /etc/mail/sendmail.mc before the MAILER lines:
dnl   include(`/etc/mail/m4/mxguard.m4')dnl
dnl then rebuild sendmail.cf (sendmailconfig, or make -C /etc/mail) and restart Sendmail.
dnl mxguard.conf must then say socket = unix:/run/mxguard/mxguard.sock and
dnl user = mxguard:smmsp (Sendmail does not chroot). F=T: mxguard down means 4xx, not loss.
dnl Removing mxguard: take the include line out of sendmail.mc first.
INPUT_MAIL_FILTER(`mxguard', `S=unix:/run/mxguard/mxguard.sock, F=T, T=S:10s;R:30s;E:5m')dnl
define(`confMILTER_MACROS_CONNECT', confMILTER_MACROS_CONNECT`, {if_addr}')dnl
define(`confMILTER_MACROS_ENVFROM', confMILTER_MACROS_ENVFROM`, {auth_authen}')dnl
