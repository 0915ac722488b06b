<?php
// One database connection per request through the pgentra extension's default connector (from
// Service Connector's variables): pg_connect, or PDO when the query string says "pdo". Answers
// with the child's pid, the session's current_user and a fingerprint of the token it used.
declare(strict_types=1);

$ci = pgentra_conninfo();
if (($_GET['driver'] ?? 'pgsql') === 'pdo') {
    $pdo = new PDO(pgentra_pdo_dsn(), null, null, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    $user = $pdo->query('select current_user')->fetchColumn();
    $pdo = null;
} else {
    $db = pg_connect(pgentra_connection_string(), PGSQL_CONNECT_FORCE_NEW);
    if ($db === false) {
        http_response_code(500);
        exit('pg_connect failed');
    }
    $user = pg_fetch_row(pg_query($db, 'select current_user'))[0];
    pg_close($db);
}
header('Content-Type: application/json');
echo json_encode([
    'pid' => getmypid(),
    'user' => $user,
    'token' => substr(hash('sha256', $ci['password']), 0, 16),
]);
