<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PgEntra\Connector;
use PgEntra\IdentityServiceException;
use PHPUnit\Framework\TestCase;

/**
 * Real logins against the harness: PostgreSQL with TLS, where role `pgentra-app` accepts exactly
 * the managed identity token that the emulator issues.
 */
final class ConnectTest extends TestCase
{
    protected function setUp(): void
    {
        if (!Harness::available()) {
            $this->markTestSkipped('needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)');
        }
    }

    private static int $fresh = 0;

    /**
     * A connector of this test's own: equal options share one connector per process (the
     * extension's registry), so each call uses a timeout no other test uses.
     */
    private function managedIdentity(): Connector
    {
        return new Connector(['connection_string' => Harness::libpq(), 'credential' => 'managed-identity',
            'timeout' => 30 + (++self::$fresh) / 1000]);
    }

    public function testPgConnectWithTheDefaultConnector(): void
    {
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser(pgentra_connection_string()));
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser(pgentra_connection_string('libpq')));
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser(pgentra_connection_string('uri')));
    }

    public function testPdoWithTheDefaultConnector(): void
    {
        $dsn = pgentra_pdo_dsn();
        $this->assertStringStartsWith('pgsql:host=', $dsn);
        $this->assertStringContainsString(';user=' . Harness::APP_ROLE . ';', $dsn);
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($dsn));
    }

    /** What Laravel's pgsql driver does with config/database.php: DSN without credentials. */
    public function testConninfoTheLaravelWay(): void
    {
        $ci = pgentra_conninfo();
        $this->assertSame(['host', 'port', 'dbname', 'user', 'password', 'sslmode'], array_keys($ci));
        $this->assertIsInt($ci['port']);
        $this->assertSame(Harness::APP_ROLE, $ci['user']);
        $this->assertSame('require', $ci['sslmode']);
        $this->assertSame(pgentra_token(), $ci['password']);
        $dsn = sprintf('pgsql:host=%s;port=%d;dbname=%s;sslmode=%s', $ci['host'], $ci['port'], $ci['dbname'], $ci['sslmode']);
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($dsn, $ci['user'], $ci['password']));
    }

    public function testConnectorClass(): void
    {
        $c = $this->managedIdentity();
        $this->assertSame(0, $c->tokenRequests());
        $token = $c->token();
        $this->assertNotSame('', $token);
        $this->assertSame(1, $c->tokenRequests());
        // Cached: the same token, no further request.
        $this->assertSame($token, $c->token());
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser($c->connectionString()));
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($c->pdoDsn()));
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($c->connectionString('pdo')));
        $ci = $c->conninfo();
        $this->assertSame($token, $ci['password']);
        $this->assertSame(Harness::APP_ROLE, $c->user());
        $this->assertSame(1, $c->tokenRequests());
        $json = json_decode($c->connectionString('json'), true, 512, JSON_THROW_ON_ERROR);
        $this->assertSame($ci, $json);
        // Options override the connection string.
        $o = new Connector(['connection_string' => 'host=elsewhere port=1 dbname=x', 'host' => getenv('PGENTRA_PG_HOST'),
            'port' => (int) getenv('PGENTRA_PG_PORT'), 'dbname' => 'postgres', 'credential' => 'managed-identity']);
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser($o->connectionString()));
    }

    /**
     * A request after a forced rotation: the cached token no longer logs in; invalidating it
     * (only if it is still the cached one) and connecting again works.
     */
    public function testDefaultConnectorAfterRotation(): void
    {
        $old = pgentra_token();
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser(pgentra_connection_string()));
        Harness::rotate();
        $this->assertSame($old, pgentra_token(), 'still cached');
        try {
            Harness::pgCurrentUser(pgentra_connection_string());
            $this->fail('the rotated token still logs in');
        } catch (\RuntimeException $e) {
            $this->assertStringContainsString('password authentication failed', $e->getMessage());
        }
        $this->assertTrue(pgentra_invalidate($old), 'the refused token was the cached one');
        $this->assertFalse(pgentra_invalidate($old), 'a second refusal of the same token drops nothing');
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser(pgentra_connection_string()));
        $this->assertNotSame($old, pgentra_token());
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser(pgentra_pdo_dsn()));
    }

    public function testConnectorAfterRotation(): void
    {
        $c = $this->managedIdentity();
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($c->pdoDsn()));
        Harness::rotate();
        try {
            Harness::pdoCurrentUser($c->pdoDsn());
            $this->fail('the rotated token still logs in');
        } catch (\PDOException $e) {
            $this->assertStringContainsString('password authentication failed', $e->getMessage());
        }
        $this->assertTrue($c->invalidate());
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($c->pdoDsn()));
        $this->assertSame(2, $c->tokenRequests());
    }

    /** README's retry pattern: a refused token is renewed once, then the connect succeeds. */
    public function testReadmeRetryPatternAfterRotation(): void
    {
        // Start over: the default connector's token may have been fetched right after an
        // earlier test's refusal, and the core keeps such a token when it is refused again
        // within seconds (REFUSAL_HOLD), as it would for a wrong user name.
        pgentra_invalidate();
        $connect = static function (): \PDO {
            for ($attempt = 0; ; $attempt++) {
                $ci = pgentra_conninfo();
                $dsn = "pgsql:host={$ci['host']};port={$ci['port']};dbname={$ci['dbname']};sslmode={$ci['sslmode']}";
                try {
                    return new \PDO($dsn, $ci['user'], $ci['password'], [\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION]);
                } catch (\PDOException $e) {
                    if ($attempt > 0 || !str_contains($e->getMessage(), 'password authentication failed')) {
                        throw $e;
                    }
                    pgentra_invalidate($ci['password']);
                }
            }
        };
        $this->assertSame(Harness::APP_ROLE, $connect()->query('select current_user')->fetchColumn());
        Harness::rotate();
        $before = Harness::stats()['msi_requests'];
        $this->assertSame(Harness::APP_ROLE, $connect()->query('select current_user')->fetchColumn());
        $this->assertSame($before + 1, Harness::stats()['msi_requests']);
    }

    /**
     * Secret mode with a password PDO's DSN cannot carry (';'): pdoDsn() refuses, the libpq
     * string and PDO with separate credentials log in.
     */
    public function testSecretModePasswordWithSemicolon(): void
    {
        $c = new Connector(['connection_string' => Harness::libpq(), 'user' => 'app_static', 'password' => "static pw;'\"\\@/?#%"]);
        $this->assertSame('app_static', Harness::pgCurrentUser($c->connectionString()));
        $this->assertSame('app_static', Harness::pgCurrentUser($c->connectionString('uri')));
        try {
            $c->pdoDsn();
            $this->fail('a PDO DSN with ";" in the password');
        } catch (\PgEntra\ConfigException $e) {
            $this->assertStringNotContainsString('static pw', $e->getMessage());
        }
        $ci = $c->conninfo();
        $dsn = "pgsql:host={$ci['host']};port={$ci['port']};dbname={$ci['dbname']};sslmode={$ci['sslmode']}";
        $this->assertSame('app_static', Harness::pdoCurrentUser($dsn, $ci['user'], $ci['password']));
        $this->assertSame(0, $c->tokenRequests());
    }

    public function testWrongClientSecret(): void
    {
        $secret = 'wrong-secret-' . bin2hex(random_bytes(8));
        $c = new Connector([
            'connection_string' => Harness::libpq() . ' user=' . Harness::APP_ROLE,
            'client_id' => Harness::SP,
            'tenant_id' => Harness::TENANT,
            'client_secret' => $secret,
            'credential' => 'client-secret',
        ]);
        try {
            $c->token();
            $this->fail('no exception');
        } catch (IdentityServiceException $e) {
            $this->assertSame('AADSTS7000215', $e->serviceCode);
            $this->assertSame(7000215, $e->getCode());
            $this->assertStringContainsString('AADSTS7000215', $e->getMessage());
            $this->assertStringNotContainsString($secret, $e->getMessage());
            $this->assertStringNotContainsString($secret, (string) $e);
            $this->assertInstanceOf(\PgEntra\Exception::class, $e);
        }
    }

    /** Many calls, one identity request: the cache serves every later call without I/O. */
    public function testOneRequestForManyCalls(): void
    {
        $c = $this->managedIdentity();
        $before = Harness::stats()['msi_requests'];
        for ($i = 0; $i < 200; $i++) {
            $c->connectionString();
        }
        $this->assertSame($before + 1, Harness::stats()['msi_requests']);
        $this->assertSame(1, $c->tokenRequests());
    }
}
