Return-Path: <orders@partner.example>
Received: from remote ([198.51.100.10]) by mail.example.com (Postfix) with ESMTP id le.com; Thu, 26 Nov 2026 09:15:00 +0000
From: orders@partner.example
To: alice@example.com
Subject: Order confirmation 4711
Date: Thu, 26 Nov 2026 09:15:00 +0000
Message-ID: <1764151200.M1P100.mail.example.com@remote.example.org>

Thank you.
