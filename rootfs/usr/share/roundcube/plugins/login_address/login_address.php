<?php

/**
 * The webmail's logins count against the browser's address, not the webmail's own.
 *
 * Roundcube logs in to Dovecot over loopback, which is never banned. On a login (the
 * login form posted) this plugin passes the browser's address to Dovecot in the IMAP
 * ID command sent before authentication (`preauth_ident`, x-originating-ip), which
 * Dovecot takes from loopback only (login_trusted_networks): its policy server then
 * refuses a banned address and counts a wrong password against it, as for any IMAP
 * client (appliance.security.policy). The address is REMOTE_ADDR, which nginx sets to
 * the client's, or the trusted load balancer's PROXY header's (proxy_whitelist stays
 * empty: no X-Forwarded-For is believed).
 *
 * The requests of a session already logged in reconnect as the webmail itself: they
 * test no password, and must not wait the delays of an address that mistyped once.
 *
 * A login Dovecot refuses for a ban comes back as `NO [ALERT] Your address ... is
 * banned (...)`: the user is shown that text instead of "Login failed".
 */
class login_address extends rcube_plugin
{
    public function init()
    {
        $this->add_hook('storage_connect', [$this, 'storage_connect']);
        $this->add_hook('login_failed', [$this, 'login_failed']);
    }

    public function storage_connect($args)
    {
        $rcmail = rcmail::get_instance();
        if ($rcmail->task != 'login' || $rcmail->action != 'login') {
            return $args;
        }
        $address = (string) ($_SERVER['REMOTE_ADDR'] ?? '');
        if (filter_var($address, FILTER_VALIDATE_IP) === false) {
            return $args;
        }
        $ident = is_array($args['preauth_ident'] ?? null) ? $args['preauth_ident'] : [];
        $ident['x-originating-ip'] = $address;
        $args['preauth_ident'] = $ident;
        return $args;
    }

    public function login_failed($args)
    {
        $rcmail = rcmail::get_instance();
        $conn = $rcmail->storage->conn ?? null;
        if (!$conn || strtoupper((string) $conn->resultcode) !== 'ALERT') {
            return $args;
        }
        // "AUTHENTICATE: text" or "LOGIN: text": the command's name first
        $text = preg_replace('/^[A-Z]+: /', '', trim((string) $conn->error));
        if ($text !== '') {
            $rcmail->output->show_message(rcube::Q($text), 'error');
        }
        return $args;
    }
}
