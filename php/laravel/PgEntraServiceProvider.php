<?php

declare(strict_types=1);

namespace PgEntra\Laravel;

use Illuminate\Support\ServiceProvider;

/**
 * Registers PgEntra\Laravel\PostgresConnector as Laravel's pgsql connector
 * (`db.connector.pgsql`, which Laravel's ConnectionFactory asks the container for). Only
 * connections with a `pgentra` key use tokens; the others are untouched.
 */
class PgEntraServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        $this->app->bind('db.connector.pgsql', PostgresConnector::class);
    }
}
