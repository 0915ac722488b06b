<?php

declare(strict_types=1);

namespace PgEntra\Tests;

use PHPUnit\Framework\TestCase;

/**
 * The shared token cache (issue #16) through the PHP extension, with sharing ON as in
 * production: PHP-FPM-style workers (pcntl_fork) share one identity request. The harness keeps
 * sharing off for the rest of this suite (PGENTRA_SHARED_CACHE=0); these tests turn it on for
 * their own processes only (tests/fixtures/shared_cache.php), with a fresh private cache
 * folder under $PGENTRA_TEST_DIR, and count requests at the emulator (/control/stats).
 */
final class SharedCacheTest extends TestCase
{
    private const WORKERS = 8;
    private string $folder = '';

    protected function setUp(): void
    {
        if (!Harness::available()) {
            $this->markTestSkipped('needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)');
        }
        if (!function_exists('pcntl_fork')) {
            $this->markTestSkipped('the pcntl extension is not available in this PHP CLI');
        }
        $this->folder = getenv('PGENTRA_TEST_DIR') . '/php-shared-' . $this->getName(false);
        self::remove($this->folder);
        mkdir($this->folder, 0700);
        Harness::control('POST', '/control/reset');
    }

    protected function tearDown(): void
    {
        if ($this->folder !== '') {
            Harness::control('POST', '/control/reset');
            self::remove($this->folder);
        }
    }

    private static function remove(string $dir): void
    {
        foreach (glob("$dir/{,.}*", GLOB_BRACE) ?: [] as $f) {
            if (is_file($f)) {
                unlink($f);
            }
        }
        if (is_dir($dir)) {
            rmdir($dir);
        }
    }

    /** @return mixed the fixture's JSON answer */
    private function fixture(string $mode, string $switch = '1')
    {
        [$rc, $out, $err] = Harness::phpFile(__DIR__ . '/fixtures/shared_cache.php', [
            'SHARED_TEST_MODE' => $mode,
            'SHARED_TEST_LIBPQ' => Harness::libpq(),
            'PGENTRA_SHARED_CACHE' => $switch,
            'PGENTRA_CACHE_DIR' => $this->folder,
            'RUST_BACKTRACE' => '0',
        ]);
        $this->assertSame(0, $rc, "shared_cache.php ($mode) failed:\n$out\n$err");
        return json_decode($out, true, 512, JSON_THROW_ON_ERROR);
    }

    public function testColdFpmWorkersMakeOneRequestAndALaterProcessNone(): void
    {
        // The first request is slow: the other workers ask while it runs.
        Harness::control('POST', '/control/faults', '[{"delay_ms": 300}]');
        $got = $this->fixture('cold');
        $this->assertCount(self::WORKERS, $got);
        foreach ($got as $g) {
            $this->assertSame(0, $g['exit'], json_encode($g));
        }
        $this->assertCount(self::WORKERS, array_unique(array_column($got, 'pid')));
        $this->assertSame(1, Harness::identityRequests(), self::WORKERS . ' forked workers made ' . Harness::identityRequests() . ' identity requests');
        $this->assertCount(1, array_unique(array_column($got, 'token')), 'every worker got the same token');
        $this->assertSame(1, array_sum(array_column($got, 'requests')));
        $this->assertSame([Harness::APP_ROLE], array_values(array_filter(array_column($got, 'user'))), 'a worker logged in with the shared token');
        // A warm cache costs nothing: a new process (a recycled FPM worker) reads the entry.
        $this->assertSame(['token' => $got[0]['token'], 'requests' => 0], $this->fixture('one'));
        $this->assertSame(1, Harness::identityRequests());
    }

    public function testWorkersForkedAfterTheMasterFetchedMakeNoRequest(): void
    {
        $got = $this->fixture('prefork');
        $this->assertSame(1, $got['master_requests']);
        $this->assertCount(self::WORKERS, $got['workers']);
        foreach ($got['workers'] as $i => $g) {
            $this->assertSame(0, $g['exit'], json_encode($g));
            $this->assertTrue($g['inherited'], 'the inherited connector\'s token');
            $this->assertTrue($g['own'], 'the worker\'s own default connector read the shared entry');
            $this->assertSame($i === 0 ? Harness::APP_ROLE : null, $g['user']);
        }
        $this->assertSame(1, Harness::identityRequests(), self::WORKERS . ' forked workers made ' . (Harness::identityRequests() - 1) . ' identity requests');
    }

    public function testSwitchingSharingOffIsHonouredPerProcess(): void
    {
        $warm = $this->fixture('one');
        $this->assertSame(1, $warm['requests']);
        foreach (['0', 'false', 'no', 'OFF'] as $spelling) {
            $this->assertSame(1, $this->fixture('one', $spelling)['requests'], "PGENTRA_SHARED_CACHE=$spelling");
        }
        $this->assertSame(5, Harness::identityRequests(), 'each switched-off process asked for itself');
        $this->assertSame(['token' => $warm['token'], 'requests' => 0], $this->fixture('one'));
        $this->assertSame(5, Harness::identityRequests());
    }

    public function testAFailureIsSharedWithTheNextProcessAndThrownAsTheSameClass(): void
    {
        // Throttled, Retry-After 30 s (beyond the 10 s timeout: the process gives up at once).
        Harness::control('POST', '/control/faults', '[{"status": 429, "retry_after": 30}]');
        $first = $this->fixture('one');
        $this->assertSame('PgEntra\\IdentityServiceException', $first['error'] ?? null, json_encode($first));
        $this->assertSame(1, Harness::identityRequests());
        $second = $this->fixture('one');
        $this->assertSame(1, Harness::identityRequests(), 'the second process answered from the shared failure');
        $this->assertSame($first['error'], $second['error'] ?? null);
        $this->assertSame($first['service_code'], $second['service_code']);
        $this->assertStringContainsString("another process's request", $second['message']);
        $this->assertSame(1, $this->fixture('one', '0')['requests'], 'switched off, a process asks for itself');
        $this->assertSame(2, Harness::identityRequests());
    }
}
