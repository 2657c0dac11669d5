<?php

/**
 * App passwords do not log in to the webmail (`appliance user app-password`): they are
 * for a phone's or a desktop's mail app (IMAP, POP3, SMTP submission), and one that
 * leaks must not open the account's settings, filters, forwarding or password change.
 *
 * Roundcube logs in to Dovecot over loopback like any IMAP client, and Dovecot 2.4
 * cannot limit a passdb to some clients (passdbs go only in `protocol` filters, and
 * the client's address is no test once the webmail passes the visitor's address on),
 * so the refusal is here, before Roundcube's own IMAP login: on the `authenticate`
 * hook, a password that matches one of the user's app-password hashes is refused with
 * a message saying why. The hashes come from a file `appliance apply` renders
 * (appliance/services/webmail), readable by root and php-fpm's www-data only: user ->
 * app password name -> bcrypt hash, which password_verify() checks ($2b$ or $2y$).
 * The user name is taken as Dovecot takes it: the part before any "@", lower case.
 */
class app_passwords extends rcube_plugin
{
    public $task = 'login';
    const HASHES = '/etc/roundcube/app-passwords.json';

    public function init()
    {
        $this->add_hook('authenticate', [$this, 'authenticate']);
    }

    public function authenticate($args)
    {
        if (!empty($args['abort']) || !is_string($args['pass']) || $args['pass'] === '') {
            return $args;
        }
        $user = strtolower(explode('@', trim((string) $args['user']), 2)[0]);
        $text = @file_get_contents(self::HASHES);
        $all = $text === false ? null : json_decode($text, true);
        if (!is_array($all)) {
            // unreadable: refuse nothing, Dovecot still checks every login
            rcube::raise_error(['code' => 500, 'message' => 'app_passwords: cannot read '
                . self::HASHES], true, false);
            return $args;
        }
        foreach ($all[$user] ?? [] as $name => $hash) {
            if (is_string($hash) && password_verify($args['pass'], $hash)) {
                rcube::write_log('userlogins', sprintf(
                    'App password %s of %s refused at the webmail from %s', $name, $user,
                    rcube_utils::remote_addr()));
                $args['abort'] = true;
                $args['error'] = 'This is an app password, for mail apps (IMAP, POP3, '
                    . 'SMTP) only. Log in to the webmail with your own password.';
                return $args;
            }
        }
        return $args;
    }
}
