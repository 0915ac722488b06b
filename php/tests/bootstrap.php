<?php

declare(strict_types=1);

/*
 * Shared helpers: harness variables, the emulator's control endpoint, token rotation, child
 * PHP processes.
 *
 * The tests that talk to PostgreSQL or the identity emulator need the harness
 * (tests/harness/with-harness.sh php/test.sh): it runs them in a loopback-only network
 * namespace with a private PostgreSQL (TLS) and the emulator, and exports IDENTITY_ENDPOINT,
 * IDENTITY_HEADER, PGENTRA_PG_HOST, PGENTRA_PG_PORT, PGENTRA_EMULATOR_HTTP, AZURE_AUTHORITY_HOST
 * and SSL_CERT_FILE. Without it they are skipped.
 */

namespace PgEntra\Tests;

if (!extension_loaded('pgentra')) {
    fwrite(STDERR, "the pgentra extension is not loaded: run php/test.sh (php -d extension=dist/php/pgentra.so)\n");
    exit(1);
}

// Never let a code path probe a real metadata address (the namespace has no route there either).
if (getenv('PGENTRA_IMDS_ENDPOINT') === false) {
    putenv('PGENTRA_IMDS_ENDPOINT=http://127.0.0.1:9');
}

final class Harness
{
    public const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
    public const SP = '22222222-2222-2222-2222-222222222222';
    public const APP_ROLE = 'pgentra-app';
    public const PG_RESOURCE = 'https://ossrdbms-aad.database.windows.net';

    public static function available(): bool
    {
        return getenv('PGENTRA_PG_HOST') !== false && getenv('PGENTRA_EMULATOR_HTTP') !== false;
    }

    /** The server as Service Connector would describe it (libpq keyword/value). */
    public static function libpq(): string
    {
        return sprintf(
            'host=%s port=%s dbname=postgres sslmode=require',
            getenv('PGENTRA_PG_HOST'),
            getenv('PGENTRA_PG_PORT')
        );
    }

    /** The dist/php/pgentra.so that this process loaded (test.sh exports it). */
    public static function extension(): string
    {
        $so = getenv('PGENTRA_PHP_EXTENSION');
        return $so !== false ? $so : dirname(__DIR__, 2) . '/dist/php/pgentra.so';
    }

    /** One request to the emulator's control endpoint (loopback). */
    public static function control(string $method, string $path, string $body = ''): string
    {
        $ctx = stream_context_create(['http' => [
            'method' => $method,
            'header' => "Content-Type: application/json\r\n",
            'content' => $body,
            'timeout' => 10,
            'ignore_errors' => true,
        ]]);
        $body = file_get_contents(getenv('PGENTRA_EMULATOR_HTTP') . $path, false, $ctx);
        $status = isset($http_response_header[0]) ? (int) explode(' ', $http_response_header[0])[1] : 0;
        if ($body === false || $status < 200 || $status >= 300) {
            throw new \RuntimeException("control $method $path: $status " . var_export($body, true));
        }
        return $body;
    }

    /** @return array<string, mixed> */
    public static function stats(): array
    {
        return json_decode(self::control('GET', '/control/stats'), true, 512, JSON_THROW_ON_ERROR);
    }

    /**
     * Rotate the tokens: the server refuses every token issued before, while pgentra's caches
     * still hold it; the emulator's identity endpoints mint new ones.
     */
    public static function rotate(): void
    {
        self::control('POST', '/control/rotate');
    }

    /** The server refuses this token from now on (SQLSTATE 28P01), while caches still hold it. */
    public static function revoke(string $token): void
    {
        self::control('POST', '/control/revoke', $token);
    }

    public static function identityRequests(): int
    {
        return (int) self::stats()['msi_requests'];
    }

    /** `select current_user` over ext/pgsql; throws with the server's message on failure. */
    public static function pgCurrentUser(string $conninfo): string
    {
        $conn = @pg_connect($conninfo, PGSQL_CONNECT_FORCE_NEW);
        if ($conn === false) {
            throw new \RuntimeException('pg_connect failed: ' . (error_get_last()['message'] ?? '?'));
        }
        try {
            $r = pg_query($conn, 'select current_user');
            return (string) pg_fetch_result($r, 0, 0);
        } finally {
            pg_close($conn);
        }
    }

    /** `select current_user` over PDO pgsql. */
    public static function pdoCurrentUser(string $dsn, ?string $user = null, ?string $password = null): string
    {
        $pdo = new \PDO($dsn, $user, $password, [\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION]);
        return (string) $pdo->query('select current_user')->fetchColumn();
    }

    /**
     * Run a PHP script in a child process with this extension loaded (pgsql and pdo_pgsql come
     * from Debian's conf.d) and the given environment changes (null removes a variable).
     *
     * @param array<string, ?string> $env
     * @return array{0: int, 1: string, 2: string} exit code, stdout, stderr
     */
    public static function php(string $code, array $env = []): array
    {
        return self::run(['-r', $code], $env);
    }

    /**
     * Like php(), for a script file.
     *
     * @param array<string, ?string> $env
     * @return array{0: int, 1: string, 2: string}
     */
    public static function phpFile(string $file, array $env = []): array
    {
        return self::run([$file], $env);
    }

    /**
     * @param list<string> $args
     * @param array<string, ?string> $env
     * @return array{0: int, 1: string, 2: string}
     */
    private static function run(array $args, array $env): array
    {
        $vars = getenv();
        foreach ($env as $k => $v) {
            if ($v === null) {
                unset($vars[$k]);
            } else {
                $vars[$k] = $v;
            }
        }
        $cmd = [PHP_BINARY, '-d', 'extension=' . self::extension(), '-d', 'display_errors=stderr', ...$args];
        $p = proc_open($cmd, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $vars);
        if (!is_resource($p)) {
            throw new \RuntimeException('proc_open failed');
        }
        fclose($pipes[0]);
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        return [proc_close($p), (string) $out, (string) $err];
    }
}

if (Harness::available()) {
    // What Service Connector would set; the default connector (pgentra_* functions) reads it.
    putenv('AZURE_POSTGRESQL_CONNECTIONSTRING=' . Harness::libpq());
}
