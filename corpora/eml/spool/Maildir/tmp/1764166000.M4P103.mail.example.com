Return-Path: <>
Received: from remote ([198.51.100.78]) by mail.example.com (Postfix) with ESMTP id le.com; Thu, 26 Nov 2026 13:27:00 +0000
From: MAILER-DAEMON@remote.example.org
To: alice@example.com
Subject: Delivery Status Notification (Failure)
Date: Thu, 26 Nov 2026 13:27:00 +0000
Message-ID: <1764166000.M4P103.mail.example.com@remote.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="R"

--R
Content-Type: text/plain

This is the mail system.
--R
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example.org

Final-Recipient: rfc822; nobody@remote.example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--R
Content-Type: text/rfc822-headers

From: alice@example.com
Subject: invoice
Message-ID: <forged@spamhost.example>

--R--
