<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PHPUnit\Framework\TestCase;

/** PHP-FPM-style forks (pcntl_fork, as the FPM master forks its workers). */
final class ForkTest extends TestCase
{
    public function testWorkersForkedFromTheMaster(): void
    {
        if (!Harness::available()) {
            $this->markTestSkipped('needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)');
        }
        if (!function_exists('pcntl_fork')) {
            $this->markTestSkipped('the pcntl extension is not available in this PHP CLI');
        }
        [$rc, $out, $err] = Harness::phpFile(__DIR__ . '/fixtures/fork.php', ['RUST_BACKTRACE' => '0']);
        $this->assertSame(0, $rc, "fork.php failed:\n$out\n$err");
        $r = json_decode($out, true, 512, JSON_THROW_ON_ERROR);
        $this->assertSame([0, 0], $r['cold'], $err);
        $this->assertSame([0, 0, 0], $r['warm'], $err);
        $this->assertSame(0, $r['warm_requests'], 'workers forked from a warm cache make no request');
        $this->assertSame([0], $r['renew'], $err);
        $this->assertSame(1, $r['renew_requests'], 'a worker renews on its own after the fork');
        $this->assertTrue($r['parent_same_token']);
        $this->assertSame(Harness::APP_ROLE, $r['parent_user']);
    }
}
