<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PgEntra\ConfigException;
use PgEntra\Connector;
use PHPUnit\Framework\TestCase;

/** The extension's surface, its exceptions and configuration errors (no harness needed). */
final class ExtensionTest extends TestCase
{
    private const KINDS = [
        'PgEntra\ConfigException' => [1, 'configuration'],
        'PgEntra\CredentialException' => [2, 'credential'],
        'PgEntra\IdentityServiceException' => [3, 'identity service'],
        'PgEntra\NetworkException' => [4, 'network'],
        'PgEntra\TlsPolicyException' => [5, 'TLS policy'],
        'PgEntra\DatabaseException' => [6, 'database'],
        'PgEntra\InternalException' => [7, 'internal'],
    ];

    public function testFunctionsAndClasses(): void
    {
        $this->assertTrue(extension_loaded('pgentra'));
        $this->assertTrue(extension_loaded('pgsql'));
        $this->assertTrue(extension_loaded('pdo_pgsql'));
        foreach (['pgentra_token', 'pgentra_connection_string', 'pgentra_conninfo', 'pgentra_pdo_dsn', 'pgentra_invalidate', 'pgentra_pg_connect', 'pgentra_pdo', 'pgentra_connector_count'] as $f) {
            $this->assertTrue(function_exists($f), $f);
        }
        $this->assertSame('libpq', (new \ReflectionFunction('pgentra_connection_string'))->getParameters()[0]->getDefaultValue());
        $this->assertTrue(is_subclass_of('PgEntra\Exception', \Exception::class));
        foreach (self::KINDS as $class => [$id, $kind]) {
            $this->assertTrue(is_subclass_of($class, 'PgEntra\Exception'), $class);
            $this->assertSame($id, constant("$class::KIND_ID"));
            $this->assertSame($kind, constant("$class::KIND"));
            $e = new $class('m', 5);
            $this->assertSame('m', $e->getMessage());
            $this->assertSame(5, $e->getCode());
            $this->assertNull($e->serviceCode);
        }
        $m = array_map(fn (\ReflectionMethod $m) => $m->getName(), (new \ReflectionClass(Connector::class))->getMethods());
        foreach (['__construct', 'token', 'connectionString', 'conninfo', 'pdoDsn', 'user', 'invalidate', 'tokenRequests', 'pgConnect', 'pdo', 'connectFailed'] as $name) {
            $this->assertContains($name, $m);
        }
    }

    /** The IDE stubs declare exactly what the extension exports, with the same signatures. */
    public function testStubsMatchTheExtension(): void
    {
        $stub = file_get_contents(dirname(__DIR__) . '/stubs/pgentra.stub.php');
        $ext = new \ReflectionExtension('pgentra');
        $sig = static function (\ReflectionFunctionAbstract $f): string {
            $params = array_map(static function (\ReflectionParameter $p): string {
                $s = $p->getType() . ' $' . $p->getName();
                if ($p->isDefaultValueAvailable()) {
                    $d = $p->getDefaultValue();
                    $s .= ' = ' . ($d === null ? 'null' : var_export($d, true));
                }
                return $s;
            }, $f->getParameters());
            $ret = $f->hasReturnType() ? ': ' . $f->getReturnType() : '';
            return 'function ' . $f->getShortName() . '(' . implode(', ', $params) . ')' . $ret;
        };
        foreach ($ext->getFunctions() as $f) {
            $this->assertStringContainsString($sig($f), $stub, $f->getName());
        }
        foreach ($ext->getClasses() as $c) {
            $this->assertMatchesRegularExpression('/class ' . preg_quote($c->getShortName(), '/') . '\b/', $stub, $c->getName());
            foreach ($c->getMethods() as $m) {
                if ($m->getDeclaringClass()->getName() === $c->getName()) {
                    $this->assertStringContainsString('public ' . $sig($m), $stub, $c->getName() . '::' . $m->getName());
                }
            }
            foreach ($c->getReflectionConstants() as $k) {
                if ($k->getDeclaringClass()->getName() === $c->getName()) {
                    $line = 'public const ' . $k->getName() . ' = ' . var_export($k->getValue(), true) . ';';
                    $this->assertStringContainsString($line, $stub, $c->getName() . '::' . $k->getName());
                }
            }
        }
        $this->assertCount(9, $ext->getFunctions());
        $this->assertCount(9, $ext->getClasses());
    }

    public function testConnectionStringPortOutOfRangeNamesTheKey(): void
    {
        try {
            new Connector(['connection_string' => 'host=h port=70000']);
            $this->fail('no exception');
        } catch (ConfigException $e) {
            $this->assertStringContainsString('connection_string', $e->getMessage());
            $this->assertStringContainsString('port', $e->getMessage());
            $this->assertStringContainsString('out of range', $e->getMessage());
            $this->assertStringNotContainsString('70000', $e->getMessage());
            $this->assertSame(0, $e->getCode());
            $this->assertNull($e->serviceCode);
        }
    }

    /** @return array<string, array{0: array<string, mixed>, 1: string}> */
    public static function badOptions(): array
    {
        return [
            'unknown key' => [['connection_string' => 'host=h', 'hots' => 'x'], "options['hots']"],
            'port out of range' => [['host' => 'h', 'port' => 70000], "options['port']"],
            'port not a number' => [['host' => 'h', 'port' => [5432]], "options['port']"],
            'string expected' => [['host' => 42], "options['host']"],
            'bool expected' => [['host' => 'h', 'allow_insecure' => 'yes'], "options['allow_insecure']"],
            'unknown credential' => [['host' => 'h', 'credential' => 'magic'], "options['credential']"],
            'unknown sslmode' => [['host' => 'h', 'sslmode' => 'sometimes'], "options['sslmode']"],
            'bad timeout' => [['host' => 'h', 'timeout' => -1], "options['timeout']"],
            'bad scope' => [['host' => 'h', 'scope' => 'https://x'], 'must end with /.default'],
            'bad connection string' => [['connection_string' => "host=h password='x"], 'connection_string'],
        ];
    }

    /**
     * @dataProvider badOptions
     * @param array<string, mixed> $options
     */
    public function testBadOptionsAreConfigErrorsNamingTheKey(array $options, string $named): void
    {
        try {
            new Connector($options);
            $this->fail('no exception');
        } catch (ConfigException $e) {
            $this->assertStringContainsString($named, $e->getMessage());
        }
    }

    public function testUnknownFormat(): void
    {
        $c = new Connector(['connection_string' => 'host=h user=u password=p', 'credential' => 'password']);
        $this->expectException(ConfigException::class);
        $this->expectExceptionMessage("unknown format 'yaml'");
        $c->connectionString('yaml');
    }

    public function testSecretModeMakesNoRequest(): void
    {
        $c = new Connector(['connection_string' => 'host=h dbname=d user=u password=pw']);
        $this->assertSame('host=h port=5432 dbname=d user=u password=pw sslmode=require', $c->connectionString());
        $this->assertSame('pgsql:host=h;port=5432;dbname=d;user=u;password=pw;sslmode=require', $c->pdoDsn());
        $this->assertSame(['host' => 'h', 'port' => 5432, 'dbname' => 'd', 'user' => 'u', 'password' => 'pw', 'sslmode' => 'require'], $c->conninfo());
        $this->assertSame('u', $c->user());
        $this->assertSame(0, $c->tokenRequests());
        $this->assertFalse($c->invalidate('pw'));
        $this->expectException(ConfigException::class);
        $c->token();
    }

    public function testTokenWithoutTlsIsRefused(): void
    {
        $c = new Connector(['connection_string' => 'host=h dbname=d user=u sslmode=disable', 'credential' => 'managed-identity']);
        $this->expectException(\PgEntra\TlsPolicyException::class);
        $c->connectionString();
    }

    /** The default connector reads the environment: a bad variable is named, in a fresh process. */
    public function testEnvironmentPortOutOfRangeNamesTheVariable(): void
    {
        [$rc, $out, $err] = Harness::php(
            'try { pgentra_connection_string(); echo "no exception"; } catch (PgEntra\ConfigException $e) { echo $e->getMessage(); }',
            [
                'AZURE_POSTGRESQL_CONNECTIONSTRING' => null,
                'AZURE_POSTGRESQL_HOST' => 'srv.postgres.database.azure.com',
                'AZURE_POSTGRESQL_PORT' => '70000',
            ]
        );
        $this->assertSame(0, $rc, $err);
        $this->assertStringContainsString('AZURE_POSTGRESQL_PORT', $out);
        $this->assertStringContainsString('out of range', $out);
    }

    /** A failed default connector is not kept: fixing the environment fixes the next call. */
    public function testDefaultConnectorIsRetriedAfterAConfigError(): void
    {
        $code = <<<'PHP'
            putenv('AZURE_POSTGRESQL_PORT=0');
            try { pgentra_pdo_dsn(); } catch (PgEntra\ConfigException $e) { echo "config error\n"; }
            putenv('AZURE_POSTGRESQL_PORT=6432');
            echo pgentra_pdo_dsn(), "\n";
            PHP;
        [$rc, $out, $err] = Harness::php($code, [
            'AZURE_POSTGRESQL_CONNECTIONSTRING' => 'host=h dbname=d user=u password=pw',
            'AZURE_POSTGRESQL_PORT' => null,
        ]);
        $this->assertSame(0, $rc, $err);
        $this->assertSame("config error\npgsql:host=h;port=6432;dbname=d;user=u;password=pw;sslmode=require\n", $out);
    }

    /** A Rust panic becomes a PgEntra\InternalException; the process goes on. */
    public function testPanicBecomesInternalException(): void
    {
        $code = <<<'PHP'
            try { PgEntra\selftest_panic(); } catch (PgEntra\InternalException $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
            echo "still alive\n";
            PHP;
        [$rc, $out, $err] = Harness::php($code, ['PGENTRA_SELFTEST' => '1', 'RUST_BACKTRACE' => '0']);
        $this->assertSame(0, $rc, $err);
        $this->assertStringContainsString('PgEntra\InternalException: a bug in pgentra (a Rust panic, caught): selftest panic', $out);
        $this->assertStringContainsString('still alive', $out);
        // Without the switch the function only throws.
        $this->expectException(\PgEntra\InternalException::class);
        \PgEntra\selftest_panic();
    }
}
