<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PgEntra\Connector;
use PHPUnit\Framework\TestCase;

/**
 * Secure by default (issue #13): an Azure server name gets sslmode=verify-full with a CA bundle
 * in every output (pg_connect strings, PDO DSN, the conninfo array Laravel reads), and a server
 * whose certificate lacks the name is refused. Azure-style names resolve to 127.0.0.1 in the
 * test namespace; the harness's test CA stands in for Azure's roots (SSL_CERT_FILE).
 */
final class TlsPolicyTest extends TestCase
{
    protected function setUp(): void
    {
        if (!Harness::available()) {
            $this->markTestSkipped('needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)');
        }
    }

    private function azure(string $var): Connector
    {
        $cs = sprintf('host=%s port=%s dbname=postgres sslmode=require', getenv($var), getenv('PGENTRA_PG_PORT'));
        return new Connector(['connection_string' => $cs, 'credential' => 'managed-identity']);
    }

    public function testAnAzureNameIsVerifiedInEveryOutput(): void
    {
        $c = $this->azure('PGENTRA_TEST_AZURE_HOST');
        $ci = $c->conninfo();
        $this->assertSame('verify-full', $ci['sslmode']);
        $this->assertSame(getenv('SSL_CERT_FILE'), $ci['sslrootcert']);
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser($c->connectionString()));
        $dsn = $c->pdoDsn();
        $this->assertStringContainsString(';sslmode=verify-full;sslrootcert=', $dsn);
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($dsn));
        // Laravel's way: a DSN from the array's keys, user and password apart.
        $laravel = sprintf('pgsql:host=%s;port=%d;dbname=%s;sslmode=%s;sslrootcert=%s', $ci['host'], $ci['port'], $ci['dbname'], $ci['sslmode'], $ci['sslrootcert']);
        $this->assertSame(Harness::APP_ROLE, Harness::pdoCurrentUser($laravel, $ci['user'], $ci['password']));
    }

    public function testAServerWithoutTheNameInItsCertificateIsRefused(): void
    {
        $c = $this->azure('PGENTRA_TEST_WRONG_HOST');
        $this->assertStringContainsString('sslmode=verify-full', $c->connectionString());
        $this->expectException(\PDOException::class);
        Harness::pdoCurrentUser($c->pdoDsn());
    }

    public function testTheOptOutKeepsRequire(): void
    {
        $cs = sprintf('host=%s port=%s dbname=postgres sslmode=require', getenv('PGENTRA_TEST_AZURE_HOST'), getenv('PGENTRA_PG_PORT'));
        $c = new Connector(['connection_string' => $cs, 'credential' => 'managed-identity', 'allow_unverified_tls' => true]);
        $this->assertSame('require', $c->conninfo()['sslmode']);
        $this->assertSame(Harness::APP_ROLE, Harness::pgCurrentUser($c->connectionString()));
    }
}
