<?php

declare(strict_types=1);

namespace PgEntra\Laravel;

use Illuminate\Database\Connectors\PostgresConnector as BaseConnector;
use PgEntra\Connector;

/**
 * Laravel's pgsql connector with a current Entra ID token for every new connection: the first,
 * every `DB::reconnect()`, Laravel's own reconnect after a lost connection, and each new
 * connection of long-running workers (Octane, `queue:work`), which would otherwise keep the
 * token their configuration was read with.
 *
 * It takes part only for connections whose configuration has a `pgentra` key (`true`, or an
 * array of PgEntra\Connector options); others connect exactly as without it. The connection's
 * non-empty `host`, `port`, `database`, `username` and `sslmode` are connector options (they win
 * over the AZURE_POSTGRESQL_* variables, which fill what they leave out); a non-empty `password`
 * is used as is (no token). Connectors with equal options are shared per process (the
 * extension's registry), so the token cache outlives each request.
 *
 * If the connect fails while the token is still the cached one, the token is dropped (only if
 * still cached) and the connect tried once more, by the core's rule (see the README).
 */
class PostgresConnector extends BaseConnector
{
    private ?Connector $pgentra = null;

    /** @param array<string, mixed> $config */
    public function connect(array $config)
    {
        $use = $config['pgentra'] ?? null;
        if ($use === null || $use === false) {
            $this->pgentra = null;
            return parent::connect($config);
        }
        $this->pgentra = new Connector(self::options($config, is_array($use) ? $use : []));
        $ci = $this->pgentra->conninfo();
        $config = [
            'host' => $ci['host'],
            'port' => $ci['port'],
            'database' => $ci['dbname'] ?? ($config['database'] ?? null),
            'username' => $ci['user'],
            'password' => $ci['password'],
            'sslmode' => $ci['sslmode'],
        ] + $config;
        return parent::connect($config);
    }

    /**
     * @param string $dsn
     * @param array<string, mixed> $config
     * @param array<int, mixed> $options
     * @return \PDO
     */
    public function createConnection($dsn, array $config, array $options)
    {
        if ($this->pgentra === null) {
            return parent::createConnection($dsn, $config, $options);
        }
        try {
            return parent::createConnection($dsn, $config, $options);
        } catch (\PDOException $e) {
            $token = (string) ($config['password'] ?? '');
            if (!$this->pgentra->connectFailed($token)) {
                throw $e;
            }
            $config['password'] = $this->pgentra->token();
            return parent::createConnection($dsn, $config, $options);
        }
    }

    /**
     * PgEntra\Connector options: the `pgentra` array, then the connection's own values.
     *
     * @param array<string, mixed> $config
     * @param array<string, mixed> $given
     * @return array<string, mixed>
     */
    private static function options(array $config, array $given): array
    {
        $o = $given;
        foreach (['host' => 'host', 'port' => 'port', 'database' => 'dbname', 'username' => 'user', 'password' => 'password', 'sslmode' => 'sslmode'] as $from => $to) {
            $v = $config[$from] ?? null;
            if ($v !== null && $v !== '' && !array_key_exists($to, $o)) {
                $o[$to] = $from === 'port' ? (int) $v : (string) $v;
            }
        }
        return $o;
    }
}
