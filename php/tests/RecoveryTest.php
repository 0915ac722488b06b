<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PgEntra\Connector;
use PgEntra\DatabaseException;
use PHPUnit\Framework\TestCase;

/**
 * Issue #17: a refusal of the token the cache still holds (revoked through the emulator; the
 * harness's PostgreSQL then answers 28P01) costs one identity request and one reconnect, in
 * pgConnect()/pdo() and the pgentra_pg_connect()/pgentra_pdo() functions; a role that does not
 * exist costs at most 2 identity requests for 10 connects (the core's REFUSAL_HOLD). And the
 * per-process registry: `new Connector` with equal options shares one token cache.
 */
final class RecoveryTest extends TestCase
{
    private static int $fresh = 0;

    protected function setUp(): void
    {
        if (!Harness::available()) {
            $this->markTestSkipped('needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)');
        }
    }

    /** @param array<string, mixed> $extra */
    private function fresh(array $extra = []): Connector
    {
        return new Connector(['connection_string' => Harness::libpq(), 'credential' => 'managed-identity',
            'timeout' => 40 + (++self::$fresh) / 1000] + $extra);
    }

    private static function pgUser(\PgSql\Connection $conn): string
    {
        try {
            return (string) pg_fetch_result(pg_query($conn, 'select current_user'), 0, 0);
        } finally {
            pg_close($conn);
        }
    }

    public function testPgConnectAfterRevocation(): void
    {
        $c = $this->fresh();
        $this->assertSame(Harness::APP_ROLE, self::pgUser($c->pgConnect(PGSQL_CONNECT_FORCE_NEW)));
        $old = $c->token();
        Harness::revoke($old);
        $before = Harness::identityRequests();
        $this->assertSame(Harness::APP_ROLE, self::pgUser($c->pgConnect(PGSQL_CONNECT_FORCE_NEW)));
        $this->assertSame($before + 1, Harness::identityRequests(), 'exactly one new identity request');
        $this->assertNotSame($old, $c->token());
        $this->assertNull(error_get_last(), 'the refused first attempt raised no warning');
    }

    public function testPdoAfterRevocation(): void
    {
        $c = $this->fresh();
        $this->assertSame(Harness::APP_ROLE, $c->pdo()->query('select current_user')->fetchColumn());
        Harness::revoke($c->token());
        $before = Harness::identityRequests();
        $pdo = $c->pdo([\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION]);
        $this->assertSame(Harness::APP_ROLE, $pdo->query('select current_user')->fetchColumn());
        $this->assertSame(\PDO::ERRMODE_EXCEPTION, $pdo->getAttribute(\PDO::ATTR_ERRMODE), 'the options reach PDO');
        $this->assertSame($before + 1, Harness::identityRequests());
    }

    public function testDefaultFunctionsAfterRevocation(): void
    {
        // Start over: a token fetched right after a refusal and refused again within
        // REFUSAL_HOLD (10 s) is kept (the refusal looks like one about the role, not the
        // token), and earlier tests refused the default connector's tokens.
        pgentra_invalidate();
        $this->assertSame(Harness::APP_ROLE, self::pgUser(pgentra_pg_connect(PGSQL_CONNECT_FORCE_NEW)));
        Harness::revoke(pgentra_token());
        $before = Harness::identityRequests();
        $this->assertSame(Harness::APP_ROLE, self::pgUser(pgentra_pg_connect(PGSQL_CONNECT_FORCE_NEW)));
        $this->assertSame($before + 1, Harness::identityRequests());
        pgentra_invalidate(); // as above: the token just fetched after a refusal would be held
        Harness::revoke(pgentra_token());
        $before = Harness::identityRequests();
        $this->assertSame(Harness::APP_ROLE, pgentra_pdo()->query('select current_user')->fetchColumn());
        $this->assertSame($before + 1, Harness::identityRequests());
    }

    public function testUnknownRoleCostsAtMostTwoRequests(): void
    {
        foreach (['pgConnect', 'pdo'] as $method) {
            $c = $this->fresh(['user' => 'no-such-role-' . $method]);
            $before = Harness::identityRequests();
            for ($i = 0; $i < 10; $i++) {
                try {
                    $method === 'pgConnect' ? $c->pgConnect(PGSQL_CONNECT_FORCE_NEW) : $c->pdo();
                    $this->fail('a role that does not exist logged in');
                } catch (DatabaseException | \PDOException $e) {
                    $this->assertStringNotContainsString($c->token(), $e->getMessage());
                    $this->assertInstanceOf($method === 'pgConnect' ? DatabaseException::class : \PDOException::class, $e);
                }
            }
            $made = Harness::identityRequests() - $before;
            $this->assertGreaterThanOrEqual(1, $made);
            $this->assertLessThanOrEqual(2, $made, "$method: 10 failed connects made $made identity requests");
        }
    }

    /** Secret mode: a refused password is not retried (and asks nobody). */
    public function testWrongStaticPasswordIsNotRetried(): void
    {
        $c = new Connector(['connection_string' => Harness::libpq(), 'user' => 'app_static', 'password' => 'wrong']);
        $before = Harness::identityRequests();
        try {
            $c->pgConnect(PGSQL_CONNECT_FORCE_NEW);
            $this->fail('a wrong password logged in');
        } catch (DatabaseException $e) {
            $this->assertStringNotContainsString('wrong', str_replace('wrong password', '', $e->getMessage()));
        }
        $this->assertSame($before, Harness::identityRequests());
    }

    /**
     * PHP-FPM drops every object at the end of a request: two requests' worth of `new
     * Connector` with the same options make one identity request; other options get a
     * connector (and a token) of their own.
     */
    public function testRegistrySharesConnectorsWithEqualOptions(): void
    {
        $options = ['connection_string' => Harness::libpq(), 'credential' => 'managed-identity',
            'client_id' => '11111111-1111-1111-1111-111111111111', 'timeout' => 29.5];
        $count = pgentra_connector_count();
        $before = Harness::identityRequests();
        foreach ([1, 2] as $request) {
            $c = new Connector($options);
            $this->assertSame('pgentra-uami', self::pgUser($c->pgConnect(PGSQL_CONNECT_FORCE_NEW)), "request $request");
            unset($c);
        }
        $this->assertSame($before + 1, Harness::identityRequests(), 'one identity request for both requests');
        $this->assertSame($count + 1, pgentra_connector_count());
        $other = new Connector(['timeout' => 29.25] + $options);
        $other->token();
        $this->assertSame($before + 2, Harness::identityRequests(), 'other options, another connector');
        $this->assertSame($count + 2, pgentra_connector_count());
        $this->assertSame(1, $other->tokenRequests());
    }
}
