<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PgEntra\Connector;
use PHPUnit\Framework\TestCase;

/**
 * The root README's "One vocabulary" table (issue #19): every name in the PHP column exists on the
 * real API with the kind of member the cell gives (`name()` / `name($arg)`: a public method or
 * function, `$name`: a public property, `NameException`: a class), checked by reflection.
 */
final class VocabularyTest extends TestCase
{
    /** @var array<string, string> concept => the PHP cell */
    private static array $column;
    /** @var list<string> the spans of the current cell that no check took yet */
    private array $left = [];
    private string $text = '';
    private string $concept = '';

    protected function setUp(): void
    {
        if (!Harness::available()) {
            $this->markTestSkipped('needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)');
        }
        $lines = file(dirname(__DIR__, 2) . '/README.md', FILE_IGNORE_NEW_LINES);
        $start = array_search('### One vocabulary', $lines, true);
        $this->assertNotFalse($start, 'README.md has no "### One vocabulary" section');
        $rows = [];
        foreach (array_slice($lines, $start + 1) as $l) {
            if (str_starts_with($l, '|')) {
                $rows[] = array_map('trim', explode('|', trim(trim($l), '|')));
            } elseif ($rows) {
                break;
            }
        }
        $col = array_search('PHP', $rows[0], true);
        $this->assertNotFalse($col, 'no PHP column');
        self::$column = [];
        foreach (array_slice($rows, 2) as $r) {
            self::$column[$r[0]] = $r[$col];
        }
    }

    /** Starts on one row: later take() calls must name its spans, done() that all were taken. */
    private function cell(string $concept): string
    {
        $this->assertArrayHasKey($concept, self::$column, "no row \"$concept\"");
        $this->concept = $concept;
        $this->text = self::$column[$concept];
        preg_match_all('/`([^`]+)`/', $this->text, $m);
        $this->left = $m[1];
        return $this->text;
    }

    private function take(string $span): string
    {
        $i = array_search($span, $this->left, true);
        $this->assertNotFalse($i, "\"{$this->concept}\": the PHP cell \"{$this->text}\" does not name `$span` (or names it twice)");
        array_splice($this->left, $i, 1);
        return $span;
    }

    private function done(): void
    {
        $this->assertSame([], $this->left, "\"{$this->concept}\": the PHP cell names spans this test does not check");
    }

    /** `name()` or `name($arg)`: a public method of $class (with that parameter); returns name. */
    private function method(string $class, string $span): string
    {
        $this->assertMatchesRegularExpression('/^\w+\((\$\w+)?\)$/', $span, "`$span` is not a method");
        preg_match('/^(\w+)\((?:\$(\w+))?\)$/', $span, $m);
        $r = new \ReflectionClass($class);
        $this->assertTrue($r->hasMethod($m[1]), "$class::{$m[1]}() does not exist");
        $method = $r->getMethod($m[1]);
        $this->assertTrue($method->isPublic() && !$method->isStatic(), "$class::{$m[1]}() is not a public method");
        if (isset($m[2])) {
            $this->assertSame($m[2], $method->getParameters()[0]->getName(), "$class::{$m[1]}()'s first parameter");
        }
        return $m[1];
    }

    public function testThePhpColumnNamesMembersThatExist(): void
    {
        // A connector of its own (equal options share one per process): this timeout only here.
        $opt = 'timeout';
        $c = new Connector(['connection_string' => Harness::libpq(), $opt => 29.125]);

        $this->cell('token');
        $token = $c->{$this->method(Connector::class, $this->take('token()'))}();
        $this->assertIsString($token);
        $f = $this->take('pgentra_token()');
        $this->assertTrue(function_exists(substr($f, 0, -2)), $f);
        $this->done();

        $this->cell('connection string');
        $this->assertStringStartsWith('postgresql://', $c->{$this->method(Connector::class, $this->take('connectionString($format)'))}('uri'));
        $this->done();

        $this->assertStringContainsString('(libpq)', $this->cell('database name'));
        $this->assertMatchesRegularExpression("/^(\\w+)\\(\\)\\['(\\w+)'\\]$/", $this->take("conninfo()['dbname']"));
        $this->method(Connector::class, 'conninfo()');
        $this->assertSame('postgres', $c->conninfo()['dbname']);
        $this->done();

        $this->cell('invalidate if still cached');
        $inv = $this->method(Connector::class, $this->take('invalidate($rejected)'));
        $this->assertFalse($c->$inv('not the cached token'));
        $this->assertTrue($c->$inv($token));
        $this->done();

        $this->assertStringContainsString('one class per kind', $this->cell('error kind'));
        $class = 'PgEntra\\' . $this->take('ConfigException');
        $this->assertTrue(is_subclass_of($class, \PgEntra\Exception::class), $class);
        try {
            new Connector(['connection_string' => 'host=h port=70000']);
            $this->fail('no exception');
        } catch (\PgEntra\Exception $e) {
            $this->assertInstanceOf($class, $e);
        }
        $this->done();

        $this->cell('service code (`AADSTS…`)');
        $prop = substr($this->take('$serviceCode'), 1);
        $p = new \ReflectionProperty(\PgEntra\Exception::class, $prop);
        $this->assertTrue($p->isPublic() && !$p->isStatic(), "\$$prop is not a public property");
        $this->assertNull($e->$prop);
        // PHP's own numeric code, as the cell says: 7000215 for AADSTS7000215 (ConnectTest
        // shows it with a wrong client secret); none on a configuration error.
        $this->assertStringContainsString("PHP's own numeric code: 7000215", $this->text);
        $this->assertSame('getCode', $this->method(\PgEntra\Exception::class, $this->take('getCode()')));
        $this->take('AADSTS7000215');
        $this->assertSame(0, $e->getCode());
        $this->done();

        $this->cell('identity request count');
        $this->assertSame(1, $c->{$this->method(Connector::class, $this->take('tokenRequests()'))}());
        $this->done();

        $this->assertStringContainsString('seconds', $this->cell('timeout (one token acquisition)'));
        $this->take($opt);
        try {
            new Connector(['connection_string' => Harness::libpq(), $opt => 'PT5S']);
            $this->fail('no exception');
        } catch (\PgEntra\ConfigException $e) {
            $this->assertStringContainsString("options['timeout'] must be a number of seconds", $e->getMessage());
        }
        $this->done();
    }
}
