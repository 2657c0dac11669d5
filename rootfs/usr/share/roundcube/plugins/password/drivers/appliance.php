<?php

/**
 * The appliance's driver for Roundcube's password plugin: a user changes their own
 * password through the appliance's account code, never by writing a file or a database.
 *
 * It runs `sudo -n /usr/local/bin/appliance webmail-password`, the one command
 * /etc/sudoers.d/webmail-password allows www-data, from an argument array (no shell),
 * and writes the user name, the current and the new password on its standard input,
 * one a line. The appliance (appliance/commands/webmail_password.py) changes nothing unless the
 * current password is right, checks the new one's strength and applies it. Its exit
 * status: 0 changed, 3 the current password is wrong, 4 the new one is refused (the
 * reason on standard error is shown to the user); anything else is an internal error.
 */
class rcube_appliance_password
{
    const COMMAND = ['/usr/bin/sudo', '-n', '/usr/local/bin/appliance', 'webmail-password'];
    // An apply checks and reloads the services: seconds, not minutes.
    const TIMEOUT_S = 90;
    const WRONG_CURRENT = 3;
    const REFUSED = 4;

    public function save($curpass, $newpass, $username)
    {
        foreach ([$username, $curpass, $newpass] as $field) {
            if (!is_string($field) || strpbrk($field, "\r\n\0") !== false) {
                return PASSWORD_ERROR;  // one line each
            }
        }

        $pipes = [];
        $proc = proc_open(self::COMMAND, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'],
                                          2 => ['pipe', 'w']], $pipes);
        if (!is_resource($proc)) {
            return $this->failed('cannot run ' . implode(' ', self::COMMAND));
        }
        fwrite($pipes[0], "$username\n$curpass\n$newpass\n");
        fclose($pipes[0]);

        [$output, $timed_out] = $this->read($pipes[1], $pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        if ($timed_out) {
            proc_terminate($proc, 9);
            proc_close($proc);
            return $this->failed('no answer within ' . self::TIMEOUT_S . ' s');
        }
        $status = proc_close($proc);
        $reason = trim($output);

        if ($status === 0) {
            return PASSWORD_SUCCESS;
        }
        if ($status === self::WRONG_CURRENT) {
            return ['code' => PASSWORD_ERROR, 'message' => $reason];
        }
        if ($status === self::REFUSED) {
            return ['code' => PASSWORD_CONSTRAINT_VIOLATION, 'message' => $reason];
        }
        return $this->failed("exit $status: $reason");
    }

    /** Standard output and error until both close, within TIMEOUT_S: [error text, timed out]. */
    private function read($stdout, $stderr)
    {
        $deadline = microtime(true) + self::TIMEOUT_S;
        $errors = '';
        $open = [$stdout, $stderr];
        foreach ($open as $pipe) {
            stream_set_blocking($pipe, false);
        }
        while ($open) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                return [$errors, true];
            }
            $read = $open;
            $write = $except = null;
            if (stream_select($read, $write, $except, (int) $left, 200000) === false) {
                return [$errors, true];
            }
            foreach ($read as $pipe) {
                $chunk = fread($pipe, 8192);
                if ($pipe === $stderr && $chunk !== false) {
                    $errors .= $chunk;
                }
                if (feof($pipe)) {
                    $open = array_values(array_filter($open, function ($p) use ($pipe) {
                        return $p !== $pipe;
                    }));
                }
            }
        }
        return [$errors, false];
    }

    private function failed($why)
    {
        rcube::raise_error([
            'code' => 600, 'file' => __FILE__, 'line' => __LINE__,
            'message' => "Password plugin (appliance): $why",
        ], true, false);
        return PASSWORD_ERROR;
    }
}
