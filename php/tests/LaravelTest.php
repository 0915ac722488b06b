<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use Illuminate\Container\Container;
use Illuminate\Database\Capsule\Manager as Capsule;
use PgEntra\Laravel\PostgresConnector;
use PHPUnit\Framework\TestCase;

/**
 * The Laravel connector (php/laravel) with Debian's Laravel database layer
 * (php-illuminate-database 8.x): a current token for every new connection, reconnects and
 * purges included, one reconnect after a refusal, connections without a `pgentra` key untouched.
 */
final class LaravelTest extends TestCase
{
    private static int $fresh = 0;

    public static function setUpBeforeClass(): void
    {
        foreach (['Container', 'Support', 'Database'] as $part) {
            $f = "/usr/share/php/Illuminate/$part/autoload.php";
            if (is_file($f)) {
                require_once $f;
            }
        }
        if (class_exists(Capsule::class)) {
            require_once dirname(__DIR__) . '/laravel/PostgresConnector.php';
            require_once dirname(__DIR__) . '/laravel/PgEntraServiceProvider.php';
        }
    }

    protected function setUp(): void
    {
        if (!Harness::available()) {
            $this->markTestSkipped('needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)');
        }
        if (!class_exists(Capsule::class)) {
            $this->markTestSkipped('needs php-illuminate-database (php/deps.sh)');
        }
    }

    /** @param array<string, mixed> $extra */
    private function capsule(array $extra = [], ?float $timeout = null): Capsule
    {
        $container = new Container();
        (new \PgEntra\Laravel\PgEntraServiceProvider($container))->register();
        $capsule = new Capsule($container);
        $capsule->addConnection($extra + [
            'driver' => 'pgsql',
            'pgentra' => ['credential' => 'managed-identity', 'timeout' => $timeout ?? 70 + (++self::$fresh) / 1000],
            'host' => getenv('PGENTRA_PG_HOST'),
            'port' => (int) getenv('PGENTRA_PG_PORT'),
            'database' => 'postgres',
            'username' => '',
            'password' => '',
            'sslmode' => 'require',
            'charset' => 'utf8',
            'prefix' => '',
            'schema' => 'public',
        ], 'pg');
        return $capsule;
    }

    private static function user(Capsule $capsule): string
    {
        return (string) $capsule->getConnection('pg')->selectOne('select current_user as u')->u;
    }

    public function testTheProviderBindsTheConnector(): void
    {
        $container = new Container();
        (new \PgEntra\Laravel\PgEntraServiceProvider($container))->register();
        $this->assertInstanceOf(PostgresConnector::class, $container->make('db.connector.pgsql'));
    }

    public function testEveryNewConnectionGetsACurrentToken(): void
    {
        $capsule = $this->capsule();
        $this->assertSame(Harness::APP_ROLE, self::user($capsule));
        $config = $capsule->getDatabaseManager()->connection('pg')->getConfig();
        $this->assertSame('', $config['password'], 'the configuration never holds the token');
        $old = (string) $capsule->getConnection('pg')->getPdo()->query('select 1')->fetchColumn();
        $this->assertSame('1', $old);
        Harness::rotate(); // every token so far is refused; the cache still holds its own
        $before = Harness::identityRequests();
        $capsule->getConnection('pg')->reconnect(); // what Laravel does after a lost connection
        $this->assertSame(Harness::APP_ROLE, self::user($capsule));
        $this->assertSame($before + 1, Harness::identityRequests(), 'one new token, one reconnect');
    }

    public function testARevokedCachedTokenCostsOneIdentityRequest(): void
    {
        $capsule = $this->capsule();
        $this->assertSame(Harness::APP_ROLE, self::user($capsule));
        $c = new \PgEntra\Connector(['credential' => 'managed-identity', 'timeout' => 70 + self::$fresh / 1000,
            'host' => getenv('PGENTRA_PG_HOST'), 'port' => (int) getenv('PGENTRA_PG_PORT'), 'dbname' => 'postgres', 'sslmode' => 'require']);
        $this->assertSame(1, $c->tokenRequests(), 'the registry gave the test the connector Laravel uses');
        Harness::revoke($c->token());
        $before = Harness::identityRequests();
        $capsule->getDatabaseManager()->purge('pg'); // a new connection (e.g. the next queue job)
        $this->assertSame(Harness::APP_ROLE, self::user($capsule));
        $this->assertSame($before + 1, Harness::identityRequests());
    }

    public function testARoleThatDoesNotExistCostsAtMostTwoIdentityRequests(): void
    {
        $capsule = $this->capsule(['username' => 'no-such-role-laravel']);
        $before = Harness::identityRequests();
        for ($i = 0; $i < 10; $i++) {
            try {
                self::user($capsule);
                $this->fail('a role that does not exist logged in');
            } catch (\PDOException | \Illuminate\Database\QueryException $e) {
                $capsule->getDatabaseManager()->purge('pg');
            }
        }
        $made = Harness::identityRequests() - $before;
        $this->assertGreaterThanOrEqual(1, $made);
        $this->assertLessThanOrEqual(2, $made, "10 failed connects made $made identity requests");
    }

    /** Two requests' worth of Laravel boots (new container, new connector object): one token. */
    public function testWorkersShareTheTokenAcrossRequests(): void
    {
        $timeout = 71.5;
        $before = Harness::identityRequests();
        foreach ([1, 2] as $request) {
            $this->assertSame(Harness::APP_ROLE, self::user($this->capsule([], $timeout)), "request $request");
        }
        $this->assertSame($before + 1, Harness::identityRequests());
    }

    public function testConnectionsWithoutTheKeyAreUntouched(): void
    {
        $capsule = $this->capsule(['pgentra' => null, 'username' => 'app_static', 'password' => "static pw;'\"\\@/?#%"]);
        $before = Harness::identityRequests();
        $this->assertSame('app_static', self::user($capsule));
        $this->assertSame($before, Harness::identityRequests());
    }
}
