<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PgEntra\ConfigException;
use PgEntra\Connector;
use PHPUnit\Framework\TestCase;

/**
 * The shared conformance vectors (tests/vectors/render.json): secret mode with each vector's
 * parameters, read back from its own libpq rendering; every format renders byte for byte as the
 * vector says. A null "pdo" means a value holds ';', which a PDO DSN cannot carry: a
 * PgEntra\ConfigException.
 */
final class VectorsTest extends TestCase
{
    private const FORMATS = ['libpq', 'uri', 'ado', 'jdbc', 'json'];

    /** @return list<array<string, mixed>> */
    private static function vectors(): array
    {
        $path = dirname(__DIR__, 2) . '/tests/vectors/render.json';
        return json_decode((string) file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
    }

    /** @return array<string, array{0: array<string, mixed>}> */
    public static function vectorCases(): array
    {
        $cases = [];
        foreach (self::vectors() as $v) {
            $cases[$v['name']] = [$v];
        }
        return $cases;
    }

    /**
     * @dataProvider vectorCases
     * @param array<string, mixed> $vector
     */
    public function testByteIdentical(array $vector): void
    {
        $rendered = $vector['rendered'];
        $c = new Connector(['connection_string' => $rendered['libpq'], 'credential' => 'password']);
        $this->assertSame(0, $c->tokenRequests());
        foreach (self::FORMATS as $f) {
            $this->assertSame($rendered[$f], $c->connectionString($f), $f);
        }
        if (array_key_exists('pdo', $rendered)) {
            if ($rendered['pdo'] === null) {
                foreach ([fn () => $c->pdoDsn(), fn () => $c->connectionString('pdo')] as $call) {
                    try {
                        $call();
                        $this->fail('a PDO DSN with ";" in a value');
                    } catch (ConfigException $e) {
                        $this->assertStringContainsString("';'", $e->getMessage());
                    }
                }
            } else {
                $this->assertSame($rendered['pdo'], $c->pdoDsn(), 'pdo');
                $this->assertSame($rendered['pdo'], $c->connectionString('pdo'), 'pdo');
            }
        }
        $p = $vector['params'];
        $ci = $c->conninfo();
        foreach (['host', 'port', 'dbname', 'user', 'password', 'sslmode'] as $k) {
            $this->assertSame($p[$k], $ci[$k], $k);
        }
    }

    /** render.json carries the PDO renderings (the core re-blesses it with PGENTRA_BLESS=1). */
    public function testVectorsIncludePdo(): void
    {
        $missing = array_values(array_filter(self::vectors(), fn ($v) => !array_key_exists('pdo', $v['rendered'])));
        if ($missing !== []) {
            $this->markTestSkipped(count($missing) . ' vectors in tests/vectors/render.json have no "pdo" rendering yet; PDO vectors not compared');
        }
        $this->assertContains(null, array_map(fn ($v) => $v['rendered']['pdo'], self::vectors()), 'a vector whose values hold ";"');
    }
}
